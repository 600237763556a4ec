module github.com/iov-platform/iov/tools/monitoring

go 1.26.8

replace (
	github.com/iov-platform/iov/proto => ../../proto
	github.com/iov-platform/iov/schemas => ../../schemas
	github.com/iov-platform/iov/tools/devkit => ../devkit
)

require github.com/grafana/grafana-foundation-sdk/go v0.0.22
