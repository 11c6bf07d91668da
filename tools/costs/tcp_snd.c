#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <unistd.h>
/* tsnd DST PORT SIZE SECS CPU NODELAY: a TCP sender loop pinned to CPU; prints CPU us per write */
int main(int argc,char**argv){
  const char*dst=argv[1]; int port=atoi(argv[2]); int size=atoi(argv[3]); double secs=atof(argv[4]);
  cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(atoi(argv[5]),&cs); sched_setaffinity(0,sizeof cs,&cs);
  int s=socket(AF_INET,SOCK_STREAM,0); int one=atoi(argv[6]);
  setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  setsockopt(s,IPPROTO_TCP,TCP_CONGESTION,"cubic",5);
  struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(port); inet_pton(AF_INET,dst,&a.sin_addr);
  if(connect(s,(void*)&a,sizeof a)){perror("connect");return 1;}
  char*buf=calloc(1,1<<20);
  struct timespec t0,t1,c0,c1; clock_gettime(CLOCK_MONOTONIC,&t0); clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c0);
  long n=0; double el=0; long bytes=0;
  while(1){ for(int i=0;i<200;i++){ long r=send(s,buf,size,0); if(r>0){n++;bytes+=r;} } clock_gettime(CLOCK_MONOTONIC,&t1); el=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)/1e9; if(el>secs)break;}
  clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c1);
  double cpu=(c1.tv_sec-c0.tv_sec)+(c1.tv_nsec-c0.tv_nsec)/1e9;
  printf("size=%d writes=%ld bytes=%ld wall=%.3f cpu=%.3f us_per_write_cpu=%.3f gbps=%.2f\n",size,n,bytes,el,cpu,cpu/n*1e6,bytes*8/el/1e9);
  shutdown(s,SHUT_WR); char c; read(s,&c,1); return 0;
}
