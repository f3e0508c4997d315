package runtime_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pouch-p2p/pouch/runtime"
)

// Point every registry at the node's dfdaemon, as "pouch mirror setup" does.
func ExampleWriteHostsTOML() {
	dir, err := os.MkdirTemp("", "certs.d-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path, err := runtime.WriteHostsTOML(dir, runtime.DefaultRegistry, "http://127.0.0.1:65001")
	if err != nil {
		panic(err)
	}
	rel, _ := filepath.Rel(dir, path)
	data, _ := os.ReadFile(path)
	fmt.Println(rel)
	fmt.Print(string(data))
	// Output:
	// _default/hosts.toml
	// # Written by pouch: pulls from every registry without its own entry go through the mirror first.
	//
	// [host]
	//   [host."http://127.0.0.1:65001"]
	//     capabilities = ["pull", "resolve"]
}
