package kafkacluster

import (
	"encoding/base64"
	"testing"
)

func TestClusterIDIsAUuidTheStorageToolAccepts(t *testing.T) {
	for range 2000 {
		id := newClusterID()
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 || id[0] == '-' {
			t.Fatalf("cluster id %q: %d bytes, %v", id, len(b), err)
		}
	}
}
