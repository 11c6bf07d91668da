#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
/* trcv PORT CPU: accept one connection, read until EOF, print CPU us per read and per byte */
int main(int argc,char**argv){
  cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(atoi(argv[2]),&cs); sched_setaffinity(0,sizeof cs,&cs);
  int l=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
  struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(atoi(argv[1]));
  bind(l,(void*)&a,sizeof a); listen(l,5); int s=accept(l,0,0);
  char*buf=malloc(1<<20); long n=0,bytes=0; struct timespec c0,c1; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c0);
  while(1){ long r=read(s,buf,131072); if(r<=0)break; n++; bytes+=r; }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c1);
  double cpu=(c1.tv_sec-c0.tv_sec)+(c1.tv_nsec-c0.tv_nsec)/1e9;
  printf("reads=%ld bytes=%ld cpu=%.3f us_per_read=%.3f ns_per_byte=%.4f\n",n,bytes,cpu,cpu/n*1e6,cpu/bytes*1e9);
  close(s); return 0;
}
