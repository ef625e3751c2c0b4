package bytesize_test

import (
	"fmt"

	"github.com/murder-deploy/murder/internal/bytesize"
)

func ExampleParse() {
	for _, s := range []string{"1MB", "1MiB", "512k", "65536"} {
		n, err := bytesize.Parse(s)
		fmt.Println(s, n, err)
	}
	// Output:
	// 1MB 1000000 <nil>
	// 1MiB 1048576 <nil>
	// 512k 524288 <nil>
	// 65536 65536 <nil>
}

func ExampleParseRate() {
	for _, s := range []string{"10MB", "50MiB/s", "100M", "64Mbit", "0"} {
		r, err := bytesize.ParseRate(s)
		fmt.Println(s, r, err)
	}
	// Output:
	// 10MB 10000000 <nil>
	// 50MiB/s 52428800 <nil>
	// 100M 104857600 <nil>
	// 64Mbit 8000000 <nil>
	// 0 0 <nil>
}

func ExampleFormatRate() {
	fmt.Println(bytesize.Format(1_000_000), bytesize.FormatRate(52_428_800))
	// Output: 976.6 KiB 50.0 MiB/s
}
