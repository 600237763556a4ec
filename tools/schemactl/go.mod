module github.com/iov-platform/iov/tools/schemactl

go 1.26.8

replace (
	github.com/iov-platform/iov/kit => ../../kit
	github.com/iov-platform/iov/schemas => ../../schemas
	github.com/iov-platform/iov/tools/devkit => ../devkit
)

require (
	github.com/iov-platform/iov/kit v0.0.0-00010101000000-000000000000
	github.com/iov-platform/iov/schemas v0.0.0-00010101000000-000000000000
	github.com/iov-platform/iov/tools/devkit v0.0.0-00010101000000-000000000000
	github.com/pmezard/go-difflib v1.0.0
	github.com/riferrei/srclient v0.7.4
	github.com/twmb/franz-go/pkg/sr v1.8.0
)

require (
	github.com/go-viper/mapstructure/v2 v2.4.0 // indirect
	github.com/golang/snappy v1.0.0 // indirect
	github.com/hamba/avro/v2 v2.31.0 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/linkedin/goavro/v2 v2.14.1 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/santhosh-tekuri/jsonschema/v5 v5.0.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/sync v0.23.0 // indirect
)
