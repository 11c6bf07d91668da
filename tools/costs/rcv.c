#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
int main(int argc,char**argv){ double secs=atof(argv[1]);
 int s=socket(AF_INET,SOCK_DGRAM,0); int rb=8<<20; setsockopt(s,SOL_SOCKET,SO_RCVBUFFORCE,&rb,sizeof rb);
 struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(9000); bind(s,(void*)&a,sizeof a);
 struct timeval tv={1,0}; setsockopt(s,SOL_SOCKET,SO_RCVTIMEO,&tv,sizeof tv);
 char buf[65536]; long n=0; struct timespec c0,c1; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c0);
 while(1){ if(recv(s,buf,sizeof buf,0)<0) break; n++; }
 clock_gettime(CLOCK_THREAD_CPUTIME_ID,&c1);
 double cpu=(c1.tv_sec-c0.tv_sec)+(c1.tv_nsec-c0.tv_nsec)/1e9;
 printf("recv pkts=%ld cpu=%.3f us_per_pkt=%.3f\n",n,cpu,n?cpu/n*1e6:0);
}
