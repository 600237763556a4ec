package svcconfig

import (
	"strings"
	"testing"
)

func TestOrderedProducerRules(t *testing.T) {
	rules := OrderedProducer("the service", map[string]string{"bootstrap.servers": "kafka.bootstrapServers"})
	tests := []struct {
		props map[string]string
		want  []string // "" entries: none; every problem once, in key order
	}{
		{map[string]string{"linger.ms": "5", "acks": "ALL", "message.timeout.ms": "0", "max.in.flight": "5"}, nil},
		{map[string]string{"metadata.broker.list": "x"}, []string{"kafka.properties.metadata.broker.list (alias of bootstrap.servers): set kafka.bootstrapServers instead"}},
		{map[string]string{"request.required.acks": "1", "acks": "0"}, []string{
			"kafka.properties.acks=0: the service requires all or -1 (a record is acknowledged only once every in-sync replica has it)",
			"kafka.properties.request.required.acks (alias of acks)=1: the service requires all or -1 (a record is acknowledged only once every in-sync replica has it)",
		}},
		{map[string]string{"message.timeout.ms": "-5"}, []string{"kafka.properties.message.timeout.ms=-5: want 30000..2147483647 (or 0) (a shorter timeout fails records during a broker restart; 0 waits forever)"}},
		{map[string]string{"max.in.flight.requests.per.connection": "0"}, []string{"kafka.properties.max.in.flight.requests.per.connection=0: want 1..5 (more than 5 in-flight requests break idempotent ordering)"}},
	}
	for _, tt := range tests {
		err := rules.Check(tt.props)
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%v refused: %v", tt.props, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v accepted", tt.props)
			continue
		}
		if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%v:\n got %q\nwant %q", tt.props, got, tt.want)
		}
	}
}
