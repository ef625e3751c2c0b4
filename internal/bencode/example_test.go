package bencode_test

import (
	"fmt"

	"github.com/murder-deploy/murder/internal/bencode"
)

func ExampleMarshal() {
	b, _ := bencode.Marshal(map[string]any{"spam": []any{"a", 1}, "cow": "moo"})
	fmt.Printf("%s\n", b)
	// Output: d3:cow3:moo4:spaml1:ai1eee
}

func ExampleUnmarshal() {
	var v struct {
		Interval int    `bencode:"interval"`
		Peers    string `bencode:"peers"`
	}
	err := bencode.Unmarshal([]byte("d8:intervali15e5:peers0:e"), &v)
	fmt.Println(v.Interval, err)
	// Output: 15 <nil>
}
