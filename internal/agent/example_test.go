package agent_test

import (
	"fmt"

	"github.com/murder-deploy/murder/internal/agent"
	"github.com/murder-deploy/murder/internal/metainfo"
)

func ExampleResolveArtifact() {
	// What `murder peer --destination-path /srv/app` does with each torrent.
	for _, name := range []string{"v42.tgz", "v42.tar.zst", "app.bin"} {
		a := agent.ResolveArtifact(&metainfo.Info{Name: name, Length: 1}, "/srv/app", false, false)
		fmt.Println(name, a.Tag, a.Archive, a.Destination)
	}
	// With --no-tag-directory the files go to the destination path itself.
	a := agent.ResolveArtifact(&metainfo.Info{Name: "v42.tgz", Length: 1}, "/srv/app", true, false)
	fmt.Println(a.Destination)
	// Output:
	// v42.tgz v42 true /srv/app/v42
	// v42.tar.zst v42 true /srv/app/v42
	// app.bin app.bin false /srv/app/app.bin
	// /srv/app
}
