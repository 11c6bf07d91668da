#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
int main(int argc,char**argv){
  const char*dst=argv[1]; int size=atoi(argv[2]); double secs=atof(argv[3]);
  int s=socket(AF_INET,SOCK_DGRAM,0);
  struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(9000); inet_pton(AF_INET,dst,&a.sin_addr);
  connect(s,(void*)&a,sizeof a);
  char*buf=calloc(1,65536);
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0);
  long n=0; double el=0; struct timespec c0,c1; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c0);
  while(1){ for(int i=0;i<1000;i++){ if(send(s,buf,size,0)>=0) n++; } clock_gettime(CLOCK_MONOTONIC,&t1); el=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)/1e9; if(el>secs)break;}
  clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c1);
  double cpu=(c1.tv_sec-c0.tv_sec)+(c1.tv_nsec-c0.tv_nsec)/1e9;
  printf("%s size=%d pkts=%ld wall=%.3f cpu=%.3f us_per_pkt_cpu=%.3f\n",dst,size,n,el,cpu,cpu/n*1e6);
}
