package main

import (
	"encoding/json"
	"fmt"
)

// envelope is the JSON record value the Python bridge writes. encoding/json decodes the
// base64 payload string into the []byte.
type envelope struct {
	ID        string `json:"id"`
	ClientID  string `json:"clientid"`
	Topic     string `json:"topic"`
	QoS       uint32 `json:"qos"`
	Payload   []byte `json:"payload"`
	Timestamp uint64 `json:"timestamp"`
	Node      string `json:"node"`
}

// bridgeEnvelope is the load.Extract for the Python bridge's topic: the record must be a
// complete JSON envelope keyed by its client id; it returns the MQTT payload inside.
func bridgeEnvelope(key, value []byte) ([]byte, error) {
	var env envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return nil, fmt.Errorf("not a JSON envelope: %w", err)
	}
	if string(key) != env.ClientID {
		return nil, fmt.Errorf("key %q, clientid %q", key, env.ClientID)
	}
	if env.ID == "" || env.Topic == "" || env.Node == "" || env.Timestamp == 0 || len(env.Payload) == 0 {
		return nil, fmt.Errorf("incomplete envelope %s", value)
	}
	return env.Payload, nil
}
