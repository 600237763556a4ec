package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestKafkaPropertyFiles: kafka.propertyFiles values are read from their files at load.
func TestKafkaPropertyFiles(t *testing.T) {
	t.Setenv("POD_NAME", "p0")
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(with(`kafka: {bootstrapServers: "k:9092", propertyFiles: {sasl.password: ` + pw + `}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Properties["sasl.password"] != "s3cret" {
		t.Fatalf("properties %v", cfg.Kafka.Properties)
	}
	if _, err := Parse([]byte(with(`kafka: {bootstrapServers: "k:9092", propertyFiles: {sasl.password: /nonexistent}}`))); err == nil {
		t.Fatal("an unreadable password file was accepted")
	}
}
