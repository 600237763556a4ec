// Package vehicle is a simulated vehicle for the downlink: an MQTT 5 client subscribed with
// QoS 1 to its command topic, recording every command it receives with its MQTT 5
// properties, answering a command on the response topic the command names, echoing its
// correlation data, as a vehicle does after executing it, and publishing its own messages.
package vehicle

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Command is one command message as the vehicle received it.
type Command struct {
	Topic   string
	Payload []byte
	Props   paho.PublishProperties
	QoS     byte
}

// Vehicle is one connected, subscribed vehicle.
type Vehicle struct {
	ID     string
	cm     *autopaho.ConnectionManager
	cancel context.CancelFunc
	in     chan Command

	mu   sync.Mutex
	msgs []Command
}

// CommandFilter is the MQTT filter a vehicle subscribes to: vehicles/{vin}/commands/+.
func CommandFilter(vin string) string { return "vehicles/" + vin + "/commands/+" }

// Connect connects vehicle vin (also its MQTT client id) to the broker at brokerURL
// (mqtt://host:port) with a clean start and subscribes to CommandFilter(vin); it returns
// once the subscription is acknowledged, or an error after timeout.
func Connect(brokerURL, vin string, timeout time.Duration) (*Vehicle, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("vehicle %s: broker url: %w", vin, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Vehicle{ID: vin, cancel: cancel, in: make(chan Command, 16)}
	subscribed := make(chan error, 1)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     10,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                2 * time.Second,
		ReconnectBackoff:              autopaho.NewConstantBackoff(100 * time.Millisecond),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
				defer scancel()
				_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: CommandFilter(vin), QoS: 1}}})
				select {
				case subscribed <- err:
				default:
				}
			}()
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          vin,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){v.received},
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("vehicle %s: connect: %w", vin, err)
	}
	v.cm = cm
	select {
	case err = <-subscribed:
	case <-time.After(timeout):
		err = fmt.Errorf("not subscribed within %s", timeout)
	}
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("vehicle %s: subscribe: %w", vin, err)
	}
	return v, nil
}

func (v *Vehicle) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	c := Command{Topic: p.Topic, Payload: append([]byte(nil), p.Payload...), QoS: p.QoS}
	if p.Properties != nil {
		c.Props = *p.Properties
	}
	v.mu.Lock()
	v.msgs = append(v.msgs, c)
	v.mu.Unlock()
	v.in <- c
	return true, nil
}

// Commands delivers every command as it arrives; read it, or the vehicle stops acknowledging
// after 16 unread commands.
func (v *Vehicle) Commands() <-chan Command { return v.in }

// Received returns every command received so far, in order.
func (v *Vehicle) Received() []Command {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Command(nil), v.msgs...)
}

// Respond publishes payload with QoS 1 to the command's response topic, echoing its
// correlation data.
func (v *Vehicle) Respond(ctx context.Context, c Command, payload []byte) error {
	return v.Publish(ctx, c.Props.ResponseTopic, payload,
		&paho.PublishProperties{CorrelationData: c.Props.CorrelationData, ContentType: "application/json"})
}

// Publish publishes payload with QoS 1 on topic with the MQTT 5 properties props (nil: none)
// and returns once the broker acknowledged it (PUBACK), or an error after 5 s.
func (v *Vehicle) Publish(ctx context.Context, topic string, payload []byte, props *paho.PublishProperties) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := v.cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload, Properties: props}); err != nil {
		return fmt.Errorf("vehicle %s publish %s: %w", v.ID, topic, err)
	}
	return nil
}

// Close disconnects (waiting up to 2 s for the DISCONNECT to go out).
func (v *Vehicle) Close() {
	if v.cm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = v.cm.Disconnect(ctx)
		cancel()
	}
	v.cancel()
}
