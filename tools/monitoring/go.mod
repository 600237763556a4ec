module github.com/iov-platform/iov/tools/monitoring

go 1.26.8

replace (
	github.com/iov-platform/iov/proto => ../../proto
	github.com/iov-platform/iov/schemas => ../../schemas
	github.com/iov-platform/iov/tools/devkit => ../devkit
)

require github.com/grafana/grafana-foundation-sdk/go v0.0.22

require (
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.2 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/text v0.14.0 // indirect
)
