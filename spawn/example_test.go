package spawn_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"

	"github.com/ferrygw/ferry/spawn"
)

// A pool of two workers sharing one socket. The worker here is this test
// binary, which its TestMain turns into a program that accepts on
// descriptor 0 and greets each connection; a real pool runs php-cgi, a
// FastCGI or SCGI program in Perl or Python, or a Go program calling
// fastcgi.Serve(nil, h) or scgi.Serve(nil, h).
func Example() {
	exe, err := os.Executable()
	if err != nil {
		fmt.Println(err)
		return
	}
	p := &spawn.Pool{Path: exe, Env: []string{"FERRY_SPAWN_WORKER=greet"}, Workers: 2}
	if err := p.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer p.Stop(context.Background())

	for range 3 {
		c, err := net.Dial(p.Network(), p.Address())
		if err != nil {
			fmt.Println(err)
			return
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(line)
	}
	// Output:
	// hello from a worker
	// hello from a worker
	// hello from a worker
}
