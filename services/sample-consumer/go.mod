module github.com/iov-platform/iov/services/sample-consumer

go 1.26.8

replace (
	github.com/iov-platform/iov/proto => ../../proto
	github.com/iov-platform/iov/schemas => ../../schemas
	github.com/iov-platform/iov/tools/devkit => ../../tools/devkit
)
