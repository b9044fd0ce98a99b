// Package module locates this repository's Go module on disk, for tests that
// build its binaries or run its scripts.
package module

import (
	"fmt"
	"os"
	"path/filepath"
)

// Root is the directory holding the go.mod nearest above the working
// directory (a test's working directory is its package's directory).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}
