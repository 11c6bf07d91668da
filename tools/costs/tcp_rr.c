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
/* trr srv PORT CPU | trr cli DST PORT CPU SECS SIZE : TCP_RR with NODELAY, one byte (or SIZE) each way */
int main(int argc,char**argv){
  int cpu = atoi(argv[argv[1][0]=='s'?3:4]);
  cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(cpu,&cs); sched_setaffinity(0,sizeof cs,&cs);
  char buf[65536]={0}; int one=1;
  if(argv[1][0]=='s'){
    int l=socket(AF_INET,SOCK_STREAM,0); setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
    struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(atoi(argv[2]));
    bind(l,(void*)&a,sizeof a); listen(l,5); int s=accept(l,0,0); setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
    while(1){ long r=read(s,buf,sizeof buf); if(r<=0)break; write(s,buf,r);} return 0;
  }
  int size=atoi(argv[6]);
  int s=socket(AF_INET,SOCK_STREAM,0); setsockopt(s,IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);
  struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(atoi(argv[3])); inet_pton(AF_INET,argv[2],&a.sin_addr);
  connect(s,(void*)&a,sizeof a);
  struct timespec t0,t1; clock_gettime(CLOCK_MONOTONIC,&t0); long n=0; double el;
  while(1){ for(int i=0;i<100;i++){ write(s,buf,size); int got=0; while(got<size){ long r=read(s,buf,size-got); if(r<=0) return 1; got+=r;} n++;}
    clock_gettime(CLOCK_MONOTONIC,&t1); el=(t1.tv_sec-t0.tv_sec)+(t1.tv_nsec-t0.tv_nsec)/1e9; if(el>atof(argv[5]))break;}
  printf("size=%d trans=%ld rtt_us=%.2f\n",size,n,el/n*1e6); return 0;
}
