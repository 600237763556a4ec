package schemas

import "time"

// Payload formats of VehicleMessage.payload_format.
const (
	PayloadBytes = "BYTES"
	PayloadJSON  = "JSON"
)

// Client event types of ClientEvent.event.
const (
	ClientConnected    = "CONNECTED"
	ClientDisconnected = "DISCONNECTED"
)

// Command states of CommandStatus.status.
const (
	CommandSent      = "SENT"
	CommandDelivered = "DELIVERED"
	CommandAcked     = "ACKED" // not written: EMQX's message.acked carries no reason code
	CommandResponded = "RESPONDED"
	CommandExpired   = "EXPIRED"
	CommandFailed    = "FAILED"
)

// Sources of CommandStatus.source.
const (
	SourceDownlink = "downlink"
	SourceBroker   = "broker"
	SourceVehicle  = "vehicle"
)

// VehicleMessage matches the latest avro/vehicle_message version. Readers decode older
// versions into it through schema resolution (missing fields take their defaults).
type VehicleMessage struct {
	MessageID     string            `avro:"message_id"`
	VehicleID     string            `avro:"vehicle_id"`
	ClientID      string            `avro:"client_id"`
	Username      *string           `avro:"username"`
	MQTTTopic     string            `avro:"mqtt_topic"`
	QoS           int32             `avro:"qos"`
	Payload       []byte            `avro:"payload"`
	PayloadFormat string            `avro:"payload_format"`
	PublishedAt   time.Time         `avro:"published_at"`
	IngestedAt    time.Time         `avro:"ingested_at"`
	Node          string            `avro:"node"`
	Route         string            `avro:"route"`
	Headers       map[string]string `avro:"headers"`
	// MQTTProperties and UserProperties are filled only from ExHook v3 (EMQX 5.9+).
	MQTTProperties map[string]string `avro:"mqtt_properties"`
	UserProperties []UserProperty    `avro:"user_properties"`
}

// UserProperty is one MQTT 5 User Property (VehicleMessage v3).
type UserProperty struct {
	Name  string `avro:"name"`
	Value string `avro:"value"`
}

// ClientEvent matches the latest avro/client_event version.
type ClientEvent struct {
	Event      string    `avro:"event"`
	VehicleID  string    `avro:"vehicle_id"`
	ClientID   string    `avro:"client_id"`
	Username   *string   `avro:"username"`
	Peerhost   string    `avro:"peerhost"`
	Protocol   string    `avro:"protocol"`
	Reason     *string   `avro:"reason"`
	OccurredAt time.Time `avro:"occurred_at"`
	Node       string    `avro:"node"`
}

// VehicleCommand matches the latest avro/vehicle_command version.
type VehicleCommand struct {
	CommandID string            `avro:"command_id"`
	VehicleID string            `avro:"vehicle_id"`
	Name      string            `avro:"name"`
	Params    map[string]string `avro:"params"`
	IssuedAt  time.Time         `avro:"issued_at"`
	ExpiresAt time.Time         `avro:"expires_at"`
	IssuedBy  *string           `avro:"issued_by"`
}

// CommandStatus matches the latest avro/command_status version.
type CommandStatus struct {
	CommandID  string    `avro:"command_id"`
	VehicleID  string    `avro:"vehicle_id"`
	Status     string    `avro:"status"`
	Reason     *string   `avro:"reason"`
	Source     string    `avro:"source"`
	OccurredAt time.Time `avro:"occurred_at"`
	Node       string    `avro:"node"`
	Response   []byte    `avro:"response"`
}
