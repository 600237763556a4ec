// Package monitoring holds the tests of the platform's monitoring: the alert rules in
// charts/iov-platform/files/prometheus-rules.yaml (promtool check and unit tests, the real
// Prometheus Operator CRD), and an end-to-end test in which a real Prometheus scrapes a
// running exhook-producer, sample consumer and downlink on the embedded stack, evaluates
// the rules and fires an alert on an induced fault. The same test checks that every metric
// the dashboards (package dashboards) and the rules query is one the services export, or
// one of EMQX's or Kafka Exporter's documented metrics (testdata/external-metrics.txt).
//
// prometheus and promtool are built once from github.com/prometheus/prometheus by
// tools/prometheus-tools.sh into a cache outside bin/.
package monitoring
