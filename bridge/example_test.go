package bridge_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ferrygw/ferry/bridge"
)

// A cgi-bin mounted at /cgi-bin/, served through the bridge's handler (what
// every front serves; Run would listen on Config.Listen).
func Example() {
	dir, err := os.MkdirTemp("", "ferry-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // scripts may run as another user (www-data when ferry is root)
		panic(err)
	}
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n%s %s\\n' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.sh"), []byte(script), 0o755); err != nil {
		panic(err)
	}
	m, err := bridge.ParseMount("/cgi-bin/=cgi:" + dir)
	if err != nil {
		panic(err)
	}
	s, err := bridge.New(bridge.Config{Mounts: []bridge.Mount{m}})
	if err != nil {
		panic(err)
	}
	front := httptest.NewServer(s.Handler())
	defer front.Close()

	resp, err := http.Get(front.URL + "/cgi-bin/hello.sh/a/b")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: /cgi-bin/hello.sh /a/b
}

// Each kind of back declares its options: a misspelt one is an error that
// names the closest match and the options that kind takes.
func ExampleParseMount() {
	_, err := bridge.ParseMount("/app/=fastcgi://127.0.0.1:9000?max_con=4")
	fmt.Println(err)
	// Output: bridge: mount "/app/=fastcgi://127.0.0.1:9000?max_con=4": unknown option "max_con" (did you mean max_conns?); fastcgi:// takes max_conns, read_timeout, ext, index, front, alias
}
