package main

import (
	"testing"

	"github.com/iov-platform/iov/kit/svcconfig/svcconfigtest"
)

func TestCommandLine(t *testing.T) { svcconfigtest.CommandLine(t, run) }
