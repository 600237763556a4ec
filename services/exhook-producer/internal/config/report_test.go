package config

import (
	"strings"
	"testing"
)

// One pass: YAML problems and validation problems come together, one per line, and every
// problem of a route names the route.
func TestEveryProblemAtOnceWithItsRoute(t *testing.T) {
	yaml := `
kafka: {bootstrapServers: "k:9092", lingerMs: 5}
registry: {url: "http://r:8081"}
shutdown: {drainTimeout: [1]}
routes:
  - {name: telemetry, filter: "v/+/t", kafkaTopic: "bad topic", payload: xml, key: {from: topic-segment, segment: 9}}
  - {name: events, filter: "v/#/e", kafkaTopic: iov.deadletter, delivery: maybe}
  - {name: telemetry, filter: "v/+/u", kafkaTopic: tel2}
`
	_, err := Parse([]byte(yaml))
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"parse yaml: line 2: field lingerMs not found in type config.Kafka",
		"parse yaml: line 4: cannot unmarshal !!seq into time.Duration",
		`routes[0] "telemetry": kafkaTopic: "bad topic": only [a-zA-Z0-9._-] are allowed`,
		`routes[0] "telemetry": key.segment 9: filter "v/+/t" has only 3 levels`,
		`routes[0] "telemetry": payload "xml": want json or bytes`,
		`routes[1] "events": filter: # must be the last level`,
		`routes[1] "events": delivery "maybe": want async, sync or spool`,
		`routes[1] "events": kafkaTopic "iov.deadletter" is reserved for status or dead-letter records`,
		`routes[2] "telemetry": duplicate route name "telemetry"`,
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}
