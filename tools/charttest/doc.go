// Package charttest holds the offline tests of the Helm charts in charts/: every check is
// a Go test that `go test -run` can pick. Nothing here is imported by the services.
//
// The umbrella chart is rendered in full: a scratch copy gets the pinned upstream chart
// archives from ../shared/charts-upstream (or $IOV_SHARED/charts-upstream) in its charts/
// folder and is rendered with Helm's Go SDK for the default values, the production values
// and each variant (charts/iov-platform/ci/*-values.yaml). Every object is validated with
// kubectl-validate against the Kubernetes schemas and the real CRDs; helm-unittest runs
// every suite; the generated haproxy.cfg is checked with `haproxy -c` and run on loopback
// in front of EMQX test doubles (tools/devkit/emqxsim).
//
// kubectl-validate and helm-unittest are built once by tools/chart-tools.sh into a cache
// directory outside bin/ ($IOV_CHART_TOOLS). `go test ./... -update` rewrites the goldens
// (charts/iov-platform/testdata/golden) and the infra/ reference files.
//
// The module stays outside go.work: Helm's Kubernetes libraries would otherwise pin the
// versions the services build with.
package charttest
