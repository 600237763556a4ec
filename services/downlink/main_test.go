package main

import (
	"context"
	"testing"
)

func TestHelpIsNotAnError(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		if err := run(context.Background(), []string{arg}); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
	}
}

func TestCheckConfigAcceptsEmbeddedDefault(t *testing.T) {
	if err := run(context.Background(), []string{"--check-config"}); err != nil {
		t.Fatal(err)
	}
}
