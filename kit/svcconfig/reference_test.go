package svcconfig

import (
	"strings"
	"testing"
)

type refConfig struct {
	Name  string             `yaml:"name"`
	Inner struct{ A, B int } `yaml:"inner"`
	List  []struct {
		X string `yaml:"x"`
		Y string `yaml:"y"`
	} `yaml:"list"`
	Props map[string]string `yaml:"props"`
}

func TestCheckReference(t *testing.T) {
	var cfg refConfig
	cfg.Props = map[string]string{"user.key": "v"}
	cfg.List = make([]struct {
		X string `yaml:"x"`
		Y string `yaml:"y"`
	}, 2)
	for _, tc := range []struct {
		name, ref string
		want      []string
	}{
		{"complete", `
# the name
name: n
inner: # a section
  a: 1 # first
  # second
  b: 2
# items
list:
  - x: 1 # an x
    y: 2 # a y
  - {x: 3, y: 4}
props: {} # free-form
`, nil},
		{"flow mapping under a commented key", `
name: n # the name
inner: {a: 1, b: 2} # both
list: # items
  - {x: 1, y: 2} # one
props: {} # free
`, nil},
		{"missing and uncommented keys", `
name: n
inner:
  a: 1 # first
list: # items
  - x: 1
    y: 2 # a y
  - x: 3 # an x after all
`, []string{"inner.b: not in the reference", "props: not in the reference", "inner: no comment", "name: no comment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReference([]byte(tc.ref), cfg, "props")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
		})
	}
}
