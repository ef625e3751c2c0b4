package bundle_test

import (
	"fmt"

	"github.com/murder-deploy/murder/internal/bundle"
)

func ExampleParseArtifactName() {
	for _, name := range []string{"v42.tgz", "v42.tar.zst", "v42.tar", "dump.sql"} {
		f, tag, ok := bundle.ParseArtifactName(name)
		if !ok {
			fmt.Println(name, "is not an archive")
			continue
		}
		fmt.Printf("%s: format %s, tag %s\n", name, f, tag)
	}
	// Output:
	// v42.tgz: format tgz, tag v42
	// v42.tar.zst: format tar.zst, tag v42
	// v42.tar: format tar, tag v42
	// dump.sql is not an archive
}

func ExampleTrackerURL() {
	u, _ := bundle.TrackerURL("tracker1:8998")
	fmt.Println(u)
	// Output: http://tracker1:8998/announce
}
