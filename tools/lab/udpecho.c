/* The Linux baseline guest's UDP echo on port 7 (bench downtime): every datagram sent back to
 * where it came from, as the pong payload does. Static, for the busybox initramfs. */
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(7), .sin_addr = { htonl(INADDR_ANY) } };
    if (s < 0 || bind(s, (struct sockaddr *)&me, sizeof me) < 0) {
        perror("udpecho");
        return 1;
    }
    for (;;) {
        char buf[65536];
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0)
            sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
    }
}
