//go:build !linux || !cgo

package kafkawait

import "os"

// Mode reports how confluent-kafka-go's pollers wait: here always ModeBlocking. The error
// names a value of IOV_KAFKA_POLL that is not a mode.
func Mode() (string, error) {
	_, err := parse(os.Getenv(EnvVar))
	return ModeBlocking, err
}

// ReadStats returns zeros here: the wrapper is not linked in.
func ReadStats() Stats { return Stats{} }
