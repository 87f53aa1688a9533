module github.com/ferrygw/ferry

go 1.26.0

// github.com/yookoala/gofast is an independent FastCGI client. ferry bench and
// BenchmarkPHPFPM run it as the off-the-shelf baseline in front of php-fpm
// (benchmarks/helper.go, which links it into the ferry binary), and
// fastcgi/interop_test.go drives ferry's FastCGI server with it. It is pinned at v0.8.0:
// the module proxy refuses @latest for it. golang.org/x/tools, which gofast needs, must
// stay at or below v0.36.0: gofast imports golang.org/x/tools/godoc/vfs, removed in v0.37.0.
require (
	github.com/pelletier/go-toml/v2 v2.4.3
	github.com/prometheus/client_golang v1.25.0
	github.com/rs/zerolog v1.35.1
	github.com/spf13/pflag v1.0.10
	github.com/yookoala/gofast v0.8.0
	golang.org/x/sys v0.48.0
)

require (
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/common v0.72.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	golang.org/x/tools v0.0.0-20200908211811-12e1bf57a112 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
