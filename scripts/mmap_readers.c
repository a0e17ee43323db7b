/* The hold of a short mmap_lock reader on this host (docs/model.md 15.9, Costs.mmap_read_cs_ns):
 * the best of 2,000 reads of /proc/self/maps (open, read all, close) and of mincore() over
 * 64 anonymous pages.  Build: gcc -O2 scripts/mmap_readers.c -o /tmp/mmap_readers */
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/mman.h>
static long ns(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
int main(){ static char buf[1<<16]; unsigned char vec[64]; void*p=mmap(0,64*4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
 long best=1L<<60, bm=1L<<60;
 for(int i=0;i<2000;i++){long t=ns(); int fd=open("/proc/self/maps",O_RDONLY); while(read(fd,buf,sizeof buf)>0); close(fd); t=ns()-t; if(t<best)best=t;
   t=ns(); mincore(p,64*4096,vec); t=ns()-t; if(t<bm)bm=t;}
 printf("maps read min %ld ns, mincore(64 pages) min %ld ns\n",best,bm); return 0;}
