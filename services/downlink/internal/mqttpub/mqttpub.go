// Package mqttpub is the downlink's MQTT 5 connection to EMQX (eclipse/paho.golang's
// autopaho, which reconnects with backoff). It only publishes: QoS 1, waiting for the PUBACK.
//
// The session is clean (Clean Start, Session Expiry 0): the downlink never relies on MQTT
// session state to resend a command after a reconnect — it retries from Kafka's record
// itself, while the command has not expired — so a command is never in flight twice from
// two sources.
package mqttpub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/iov-platform/iov/services/downlink/internal/config"
	"github.com/iov-platform/iov/services/downlink/internal/metrics"
)

// ErrNotConnected means there is no MQTT connection right now (autopaho is reconnecting).
var ErrNotConnected = errors.New("mqtt: not connected")

// Publisher is one MQTT connection manager.
type Publisher struct {
	cm        *autopaho.ConnectionManager
	cancel    context.CancelFunc
	connected atomic.Bool
	up        chan struct{} // closed on the first connection
	log       *slog.Logger
	m         *metrics.Metrics
	onChange  func(connected bool)
}

// Options wires a Publisher.
type Options struct {
	Config   config.MQTT
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	OnChange func(connected bool) // called (not blocking) when the connection goes up or down
}

// Start begins connecting in the background; it does not wait for the connection.
func Start(o Options) (*Publisher, error) {
	c := o.Config
	u, err := c.URL()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	p := &Publisher{log: o.Log.With("component", "mqtt"), m: o.Metrics, onChange: o.OnChange, up: make(chan struct{})}
	if p.onChange == nil {
		p.onChange = func(bool) {}
	}
	var firstUp atomic.Bool
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        tlsCfg,
		KeepAlive:                     uint16(c.KeepAlive / time.Second),
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         0,
		ConnectTimeout:                c.ConnectTimeout,
		ReconnectBackoff:              func(attempt int) time.Duration { return reconnectDelay(c.Retry, attempt) },
		ConnectUsername:               c.Username,
		ConnectPassword:               []byte(c.Password),
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			p.setConnected(true)
			if firstUp.CompareAndSwap(false, true) {
				close(p.up)
			}
			var maxQoS byte = 2
			if ca.Properties != nil && ca.Properties.MaximumQoS != nil {
				maxQoS = *ca.Properties.MaximumQoS
			}
			p.log.Info("mqtt connected", "broker", u.Redacted(), "client_id", c.ClientID, "max_qos", maxQoS)
		},
		OnConnectionDown: func() bool {
			p.setConnected(false)
			p.log.Warn("mqtt connection lost; reconnecting", "broker", u.Redacted())
			return true
		},
		OnConnectError: func(err error) {
			p.log.Warn("mqtt connect failed", "broker", u.Redacted(), "err", err)
		},
		Errors:     pahoLog{p.log, slog.LevelWarn},
		PahoErrors: pahoLog{p.log, slog.LevelWarn},
		ClientConfig: paho.ClientConfig{
			ClientID:      c.ClientID,
			PacketTimeout: c.PublishTimeout,
			// The downlink subscribes to nothing; answer anything the broker sends (it
			// should not) so that paho acknowledges it.
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(paho.PublishReceived) (bool, error) { return true, nil },
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				reason := ""
				if d.Properties != nil {
					reason = d.Properties.ReasonString
				}
				p.log.Warn("mqtt broker disconnected us", "reason_code", fmt.Sprintf("0x%02x", d.ReasonCode), "reason", reason)
			},
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	p.cm, p.cancel = cm, cancel
	return p, nil
}

// reconnectDelay: immediately at first, then the retry backoff.
func reconnectDelay(r config.Retry, attempt int) time.Duration {
	if attempt <= 0 {
		return 0
	}
	return r.Backoff(attempt)
}

func (p *Publisher) setConnected(up bool) {
	p.connected.Store(up)
	if up {
		p.m.MQTTConnected.Set(1)
	} else {
		p.m.MQTTConnected.Set(0)
	}
	p.onChange(up)
}

// Connected reports whether the connection is up now.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// Up is closed once the first connection is made.
func (p *Publisher) Up() <-chan struct{} { return p.up }

// Publish sends one message and, for QoS 1, waits for the PUBACK until ctx ends. The
// response is returned whenever a PUBACK arrived, including one with an error reason code
// (>= 0x80), which also yields an error.
func (p *Publisher) Publish(ctx context.Context, msg *paho.Publish) (*paho.PublishResponse, error) {
	if !p.Connected() {
		return nil, ErrNotConnected
	}
	resp, err := p.cm.Publish(ctx, msg)
	if errors.Is(err, autopaho.ConnectionDownError) {
		return nil, ErrNotConnected
	}
	return resp, err
}

// Disconnect sends DISCONNECT and stops reconnecting.
func (p *Publisher) Disconnect(ctx context.Context) error {
	err := p.cm.Disconnect(ctx)
	p.cancel()
	p.setConnected(false)
	return err
}

// pahoLog adapts slog to paho's logger.
type pahoLog struct {
	log   *slog.Logger
	level slog.Level
}

func (l pahoLog) Println(v ...any) {
	l.log.Log(context.Background(), l.level, fmt.Sprint(v...), "component", "paho")
}

func (l pahoLog) Printf(format string, v ...any) {
	l.log.Log(context.Background(), l.level, fmt.Sprintf(format, v...), "component", "paho")
}
