// Command vulngate decides, from govulncheck's JSON output on standard
// input, whether scripts/test passes:
//
//   - a vulnerability that our code calls (a finding whose trace starts at a
//     function) fails the run, unless its OSV id is accepted, with a reason,
//     in the file given as the only argument;
//   - a vulnerability in a package we import or a module we require but do
//     not call is listed and does not fail: govulncheck found no path from
//     our code to it, and upgrading for it is routine maintenance;
//   - an accepted id that is no longer found is reported, so that the list
//     shrinks when the fix lands.
//
// The accepted file has one id per line followed by the reason; blank lines
// and lines starting with # are ignored.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// message is the part of govulncheck's JSON messages vulngate reads.
type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

// Report is what a govulncheck run found.
type Report struct {
	Called   map[string]string // id -> "module (fixed in version): summary"
	Imported []string          // ids found only in imported or required code
}

// read decodes govulncheck's stream of JSON messages.
func read(r io.Reader) (*Report, error) {
	dec := json.NewDecoder(r)
	summary := map[string]string{}
	called := map[string]string{}
	other := map[string]bool{}
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading govulncheck's output: %w", err)
		}
		if m.OSV != nil {
			summary[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 {
			if f.Trace[0].Function != "" {
				fixed := f.FixedVersion
				if fixed == "" {
					fixed = "no fix yet"
				}
				called[f.OSV] = fmt.Sprintf("%s (fixed in %s)", f.Trace[0].Module, fixed)
			} else {
				other[f.OSV] = true
			}
		}
	}
	rep := &Report{Called: map[string]string{}}
	for id, where := range called {
		rep.Called[id] = where + ": " + summary[id]
		delete(other, id)
	}
	for id := range other {
		rep.Imported = append(rep.Imported, id)
	}
	slices.Sort(rep.Imported)
	return rep, nil
}

// readAccepted reads the accepted ids and their reasons.
func readAccepted(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, reason, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(id, "GO-") || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("line %d: want an id (GO-YYYY-NNNN) and the reason it is accepted", n)
		}
		out[id] = strings.TrimSpace(reason)
	}
	return out, sc.Err()
}

// judge writes the verdict to w and returns whether the run passes.
func judge(rep *Report, accepted map[string]string, w io.Writer) bool {
	ok := true
	ids := make([]string, 0, len(rep.Called))
	for id := range rep.Called {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if reason, acc := accepted[id]; acc {
			fmt.Fprintf(w, "accepted  %s %s\n          because: %s\n", id, rep.Called[id], reason)
			continue
		}
		ok = false
		fmt.Fprintf(w, "CALLED    %s %s\n", id, rep.Called[id])
	}
	var stale []string
	for id := range accepted {
		if _, found := rep.Called[id]; !found {
			stale = append(stale, id)
		}
	}
	slices.Sort(stale)
	for _, id := range stale {
		fmt.Fprintf(w, "stale     %s is accepted but no longer found: remove it from the accepted list\n", id)
	}
	if len(rep.Imported) > 0 {
		fmt.Fprintf(w, "not called (informational): %s\n", strings.Join(rep.Imported, " "))
	}
	if !ok {
		fmt.Fprintln(w, "govulncheck: our code calls a vulnerable function: upgrade the module (or Go), or accept the id with a reason")
	}
	return ok
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: govulncheck -format json ./... | vulngate ACCEPTED_FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	accepted, err := readAccepted(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulngate: %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	rep, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	if !judge(rep, accepted, os.Stdout) {
		os.Exit(1)
	}
}
