package hook

import (
	"context"
	"maps"
	"slices"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/schemas"
)

// Kafka header prefixes of the MQTT 5 properties of a message (ExHook v3, EMQX 5.9+): one
// header per property, "iov.mqtt.prop.<EMQX property name>" (e.g. iov.mqtt.prop.Content-Type)
// in name order, then "iov.mqtt.user.<name>" per User Property in the publisher's order,
// repeats included.
const (
	HeaderPropertyPrefix     = "iov.mqtt.prop."
	HeaderUserPropertyPrefix = "iov.mqtt.user."
)

// properties are the MQTT 5 PUBLISH properties EMQX passed with a message.publish call. Only
// ExHook v3 carries them; a v2 call has none.
type properties struct {
	system map[string]string // by EMQX's property name, User Property excluded
	user   []schemas.UserProperty
}

type propertiesKey struct{}

// withProperties makes p the properties of the message.publish call served under ctx.
func withProperties(ctx context.Context, p *properties) context.Context {
	return context.WithValue(ctx, propertiesKey{}, p)
}

// publishProperties returns the properties of the call served under ctx; nil without any.
func publishProperties(ctx context.Context) *properties {
	p, _ := ctx.Value(propertiesKey{}).(*properties)
	return p
}

// fill copies the properties into the envelope (VehicleMessage v3 fields) and returns it.
func (p *properties) fill(m *schemas.VehicleMessage) *schemas.VehicleMessage {
	if p != nil {
		m.MQTTProperties, m.UserProperties = p.system, p.user
	}
	return m
}

// headers are the properties as Kafka record headers; nil without properties.
func (p *properties) headers() []kafka.Header {
	if p == nil || len(p.system)+len(p.user) == 0 {
		return nil
	}
	hs := make([]kafka.Header, 0, len(p.system)+len(p.user))
	for _, k := range slices.Sorted(maps.Keys(p.system)) {
		hs = append(hs, kafka.Header{Key: HeaderPropertyPrefix + k, Value: []byte(p.system[k])})
	}
	for _, u := range p.user {
		hs = append(hs, kafka.Header{Key: HeaderUserPropertyPrefix + u.Name, Value: []byte(u.Value)})
	}
	return hs
}
