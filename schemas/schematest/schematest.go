// Package schematest holds fixtures of the schemas' Go types for the tests that encode and
// decode them (schemas/serde, the sample consumer's decoder).
package schematest

import (
	"time"

	"github.com/iov-platform/iov/schemas"
)

// VehicleMessage is a VehicleMessage with every field set, the v3 properties included (a
// User Property name repeated, as MQTT allows); a new value on each call, so a test may
// change it.
func VehicleMessage() schemas.VehicleMessage {
	user := "fleet-a"
	return schemas.VehicleMessage{
		MessageID:      "0006123ABC",
		VehicleID:      "VIN123",
		ClientID:       "VIN123",
		Username:       &user,
		MQTTTopic:      "vehicles/VIN123/telemetry",
		QoS:            1,
		Payload:        []byte(`{"speed":42}`),
		PayloadFormat:  schemas.PayloadJSON,
		PublishedAt:    time.UnixMilli(1_700_000_000_123).UTC(),
		IngestedAt:     time.UnixMilli(1_700_000_000_456).UTC(),
		Node:           "emqx@10.0.0.1",
		Route:          "telemetry",
		Headers:        map[string]string{"peerhost": "10.1.2.3"},
		MQTTProperties: map[string]string{"Content-Type": "application/json", "Message-Expiry-Interval": "30"},
		UserProperties: []schemas.UserProperty{{Name: "trace", Value: "a"}, {Name: "trace", Value: "b"}},
	}
}
