package supervisor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ccos-project/ccos/engine"
	. "github.com/ccos-project/ccos/supervisor"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The console is tested in a real browser: Debian's chromium, headless,
// driven over the DevTools protocol (chromedp, through a pipe). Without
// chromium the tests skip saying how to get it; under CI they fail.

// chromiumPath is the browser the tests drive: $CCOS_CHROMIUM, else
// Debian's /usr/bin/chromium.
func chromiumPath(t testing.TB) string {
	path := os.Getenv("CCOS_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no browser at %s: install Debian's chromium (apt-get install chromium; scripts/test does) or set CCOS_CHROMIUM to a Chromium binary", path)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// browserPage is one tab of a headless chromium with a fresh profile,
// pointed at a supervisor's console.
type browserPage struct {
	t    testing.TB
	ctx  context.Context
	base string // http://127.0.0.1:PORT

	mu   sync.Mutex
	errs []string // uncaught exceptions of the page
}

func newBrowserPage(t testing.TB, base string) *browserPage {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 960),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	p := &browserPage{t: t, ctx: ctx, base: base}
	if err := chromedp.Listen(ctx, func(ev any) {
		if ex, ok := ev.(*runtime.EventExceptionThrown); ok {
			p.mu.Lock()
			text := ex.ExceptionDetails.Text
			if ex.ExceptionDetails.Exception != nil {
				text += " " + ex.ExceptionDetails.Exception.Description
			}
			p.errs = append(p.errs, text)
			p.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(p.noErrors)
	return p
}

// noErrors fails the test if the page threw.
func (p *browserPage) noErrors() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		p.t.Errorf("the page threw: %s", e)
	}
	p.errs = nil
}

// open loads the console at a fragment (#/runs, ...) as a new page.
func (p *browserPage) open(fragment string) {
	p.t.Helper()
	p.do(chromedp.Navigate("about:blank"), chromedp.Navigate(p.base+"/ui/"+fragment))
}

func (p *browserPage) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v\n%s", err, p.mainText())
	}
}

// wait waits until an element matching a CSS selector is visible.
func (p *browserPage) wait(css string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(css)))
}

// text is the visible text of the first element matching css.
func (p *browserPage) text(css string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](p *browserPage, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func (p *browserPage) mainText() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main")?.innerText ?? ""`))
	return s
}

// screenshot writes the viewport as name.png in $CCOS_CONSOLE_SCREENSHOTS
// (the README's pictures are made with docs/console there) or in a
// temporary directory.
func (p *browserPage) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("CCOS_CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = p.t.TempDir()
	}
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10000 {
		p.t.Fatalf("screenshot %s is not a picture (%d bytes)", name, len(png))
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// scrollTo scrolls the element with an id to the top of the viewport.
func (p *browserPage) scrollTo(id string) {
	p.t.Helper()
	eval[bool](p, `(document.getElementById("`+id+`").scrollIntoView({block: "start"}), true)`)
}

// accessible checks what a page must have for keyboard and screen reader
// users: a language, one h1, a label for every field, a name for every
// button and link, a caption or header row for every table, no positive
// tabindex, and a style sheet that loaded (the focus outline is drawn).
func (p *browserPage) accessible(page string) {
	p.t.Helper()
	problems := eval[[]string](p, `(() => {
	  const out = [];
	  if (!document.documentElement.lang) out.push("no lang on <html>");
	  if (document.querySelectorAll("h1").length !== 1) out.push(document.querySelectorAll("h1").length + " h1 elements");
	  for (const el of document.querySelectorAll("input, select, textarea"))
	    if (!el.labels || el.labels.length === 0) out.push("unlabelled " + el.outerHTML.slice(0, 80));
	  for (const el of document.querySelectorAll("button, a[href]"))
	    if (!el.textContent.trim() && !el.getAttribute("aria-label")) out.push("nameless " + el.outerHTML.slice(0, 80));
	  for (const t of document.querySelectorAll("table"))
	    if (!t.querySelector("caption") && !t.querySelector("th")) out.push("table without caption or headers");
	  for (const el of document.querySelectorAll("[tabindex]"))
	    if (Number(el.getAttribute("tabindex")) > 0) out.push("positive tabindex " + el.outerHTML.slice(0, 80));
	  if (getComputedStyle(document.body).margin !== "0px") out.push("the style sheet did not load");
	  return out;
	})()`)
	for _, pr := range problems {
		p.t.Errorf("%s page: %s", page, pr)
	}
}

// The console in a browser: the run list updates while plans run, a run's
// page shows its steps, its source with the running step highlighted and
// a refused egress decision, the agents page shows configs and limits,
// and the verify button reports a tampered chain as broken. Screenshots of
// the main pages are written on the way.
func TestConsoleInBrowser(t *testing.T) {
	ch := newConsoleHarness(t)
	p := newBrowserPage(t, ch.http)
	ctx := context.Background()
	spin := Submission{File: "spin.rtfs", Plan: `(plan "spin" :body (step "spin" (loop [i 0] (if (< i 100000000) (recur (inc i)) i))))`}

	// The list, live: a run appears and changes state without a reload.
	p.open("#/runs")
	p.wait(`body[data-live="on"]`)
	p.wait(`main[data-state="loaded"]`)
	slow, err := ch.c.Submit(ctx, "agent.min", spin)
	if err != nil {
		t.Fatal(err)
	}
	p.wait(`#runs tr[data-run="` + slow.ID + `"][data-status="running"]`)
	egress := ch.run(t, "agent.net", ch.egressPlan())
	p.wait(`#runs tr[data-run="` + egress.ID + `"][data-status="succeeded"]`)
	if got := p.text(`#runs-live`); !strings.Contains(got, egress.ID) {
		t.Errorf("the live region says %q", got)
	}
	// A few more, one of which fails, for the picture.
	for i, plan := range []string{`(plan "sum" :body (step "add" (call :ccos.math.add 40 2)))`,
		`(plan "concat" :body (step "join" (call :ccos.string.concat "a" "b")))`,
		`(plan "bad-sum" :body (step "add" (call :ccos.math.add "forty" 2)))`} {
		r := ch.run(t, []string{"agent.min", "agent.net", "agent.min"}[i], Submission{File: "p.rtfs", Plan: plan})
		p.wait(`#runs tr[data-run="` + r.ID + `"][data-status="` + string(r.Status) + `"]`)
	}
	// Newest first, whatever order the changes came in.
	if got := eval[bool](p, `(() => { const t = [...document.querySelectorAll("#runs tbody tr td:nth-child(6)")].map(td => td.innerText); return t.every((x, i) => i === 0 || t[i-1] >= x); })()`); !got {
		t.Error("the runs are not newest first")
	}
	p.accessible("runs")
	p.screenshot("runs")
	if _, err := ch.c.Cancel(ctx, slow.ID); err != nil {
		t.Fatal(err)
	}
	p.wait(`#runs tr[data-run="` + slow.ID + `"][data-status="cancelled"]`)

	// Filters: only the agent's runs.
	p.open("#/runs?agent=agent.net")
	p.wait(`main[data-state="loaded"]`)
	if agents := eval[[]string](p, `[...document.querySelectorAll("#runs tbody tr td:nth-child(2)")].map(td => td.innerText)`); len(agents) != 2 || agents[0] != "agent.net" || agents[1] != "agent.net" {
		t.Errorf("runs listed for agent.net: %q", agents)
	}

	// A running run's page highlights the step being run in its source.
	live, err := ch.c.Submit(ctx, "agent.min", spin)
	if err != nil {
		t.Fatal(err)
	}
	p.open("#/runs/" + live.ID)
	p.wait(`#source .src-step.running[data-step="spin"]`)
	if got := p.text("#running-step"); got != "Running step: spin" {
		t.Errorf("running step: %q", got)
	}
	if _, err := ch.c.Cancel(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	p.wait(`main[data-state="ended"]`)
	if p.text("#h-summary + dl .badge") != "cancelled" {
		t.Errorf("the live run page did not turn cancelled")
	}

	// The egress run's page: its steps, admitted profiles, both decisions.
	p.open("#/runs/" + egress.ID)
	p.wait(`main[data-state="ended"]`)
	for _, step := range []string{"get", "denied"} {
		row := p.text(`#steps tr[data-step="` + step + `"]`)
		if !strings.Contains(row, "ok") || !strings.Contains(row, "capabilities ccos.network.http-fetch") || !strings.Contains(row, "domains origin.test") {
			t.Errorf("step %s: %q", step, row)
		}
		p.wait(`#source .src-step.done[data-step="` + step + `"]`)
	}
	var denyRule string
	ch.c.Events(ctx, egress.ID, 0, func(e engine.Event) error {
		if e.Type == "proxy.decision" && strings.Contains(string(e.Data), `"action":":deny"`) {
			denyRule = strings.SplitN(strings.SplitN(string(e.Data), `"rule":"`, 2)[1], `"`, 2)[0]
		}
		return nil
	})
	egressText := p.text("#egress")
	refused := eval[string](p, `[...document.querySelectorAll("#egress tbody tr")].map(tr => tr.innerText).find(t => t.includes("refused")) || ""`)
	if denyRule == "" || !strings.Contains(refused, "other.test") || !strings.Contains(refused, denyRule) || !strings.Contains(egressText, "allowed") {
		t.Errorf("egress decisions (rule %q):\n%s", denyRule, egressText)
	}
	if got := p.text("#egress-count"); got != "2 decision(s): 1 allowed, 1 refused." {
		t.Errorf("egress count: %q", got)
	}
	if got := p.text("#output"); !strings.Contains(got, "fetching") {
		t.Errorf("output: %q", got)
	}
	if origins := eval[[]string](p, `[...new Set([...document.querySelectorAll("#events tbody tr td:nth-child(4)")].map(td => td.innerText))].sort()`); strings.Join(origins, " ") != " guest host" {
		t.Errorf("origins shown: %q", origins)
	}
	if got := p.text("#calls"); !strings.Contains(got, "ccos.network.http-fetch") {
		t.Errorf("capability calls: %q", got)
	}
	// Capability arguments (the URL's path) and values (the body) are not
	// shown, not even inside an error.
	if got := eval[string](p, `document.querySelector("#calls").innerText + document.querySelector("#events").innerText`); strings.Contains(got, "/data") ||
		!strings.Contains(got, "http://other.test:"+ch.port+"/…") || strings.Contains(got, "hello from the origin") {
		t.Errorf("capability arguments or values are shown:\n%s", got)
	}
	if got := p.text("#receipt-link"); got != "Signed run receipt" {
		t.Errorf("receipt link: %q", got)
	}
	p.wait("#checkpoint-note")
	if got := p.text("#attestation"); !strings.Contains(got, "No attestation") {
		t.Errorf("attestation of a process run: %q", got)
	}
	p.accessible("run")
	p.scrollTo("h-steps")
	p.screenshot("run")
	p.scrollTo("h-egress")
	p.screenshot("run-egress")

	// A queued run's page follows it until it has run: the four workers
	// are busy with spinning runs until they are cancelled.
	var spinning []string
	for i := 0; i < 4; i++ {
		r, err := ch.c.Submit(ctx, "agent.min", spin)
		if err != nil {
			t.Fatal(err)
		}
		spinning = append(spinning, r.ID)
	}
	later, err := ch.c.Submit(ctx, "agent.min", Submission{File: "later.rtfs", Plan: `(plan "later" :body (step "later" 1))`})
	if err != nil {
		t.Fatal(err)
	}
	p.open("#/runs/" + later.ID)
	p.wait(`#h-summary + dl .st-queued`)
	for _, id := range spinning {
		if _, err := ch.c.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	p.wait(`main[data-state="ended"]`)
	if got := p.text(`#steps tr[data-step="later"]`); !strings.Contains(got, "ok") || p.text("#h-summary + dl .badge") != "succeeded" {
		t.Errorf("the queued run's page after it ran: %q", got)
	}

	// A retried step: its attempts.
	src, err := os.ReadFile("../examples/plans/retry.rtfs")
	if err != nil {
		t.Fatal(err)
	}
	retried := ch.run(t, "agent.min", Submission{File: "retry.rtfs", Plan: string(src)})
	if retried.Status != StatusSucceeded {
		t.Fatalf("retry run: %+v", retried)
	}
	p.open("#/runs/" + retried.ID)
	p.wait(`main[data-state="ended"]`)
	if got := eval[string](p, `document.querySelector('#steps tr[data-step="write-then-check"] td:nth-of-type(4)').innerText`); got != "2" {
		t.Errorf("attempts of the retried step: %q", got)
	}
	if got := p.text(`#steps tr[data-step="write-then-check"]`); !strings.Contains(got, "retry 2") {
		t.Errorf("the retried step's admitted profile: %q", got)
	}

	// Pages of 50, older and newer.
	var subs []string
	for i := 0; i < 56; i++ {
		r, err := ch.c.Submit(ctx, "agent.min", Submission{Plan: fmt.Sprintf(`(step "n" %d)`, i)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, r.ID)
	}
	for _, id := range subs {
		if _, err := ch.c.Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	all, err := ch.c.List(ctx, Filter{Agent: "agent.min", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	p.open("#/runs?agent=agent.min")
	p.wait(`main[data-state="loaded"]`)
	first := eval[[]string](p, `[...document.querySelectorAll("#runs tbody tr")].map(tr => tr.dataset.run)`)
	if len(first) != 50 || first[0] != all.Runs[0].ID {
		t.Fatalf("first page: %d runs, first %v", len(first), first[:1])
	}
	p.do(chromedp.Click(chromedp.CSS(".pager button:nth-child(2)")))
	p.wait(`#runs tr[data-run="` + all.Runs[50].ID + `"]`)
	if n := eval[int](p, `document.querySelectorAll("#runs tbody tr").length`); n != len(all.Runs)-50 {
		t.Errorf("older page: %d runs, want %d", n, len(all.Runs)-50)
	}
	p.do(chromedp.Click(chromedp.CSS(".pager button:nth-child(1)")))
	p.wait(`#runs tr[data-run="` + all.Runs[0].ID + `"]`)

	// Agents: config, limits, counters.
	p.open("#/agents")
	p.wait(`[data-agent="agent.net"]`)
	card := p.text(`[data-agent="agent.net"]`)
	for _, want := range []string{"origin.test", "ccos.network.http-fetch", "Limits", "Memory", "Deadline", "Runs succeeded", "Chain events", "through the egress proxy"} {
		if !strings.Contains(card, want) {
			t.Errorf("agent card lacks %q:\n%s", want, card)
		}
	}
	p.accessible("agents")
	p.screenshot("agents")

	// The chain: verified on the server, a proof, then a tampered byte.
	p.open("#/chain/agent.net")
	p.wait(`main[data-state="loaded"]`)
	p.do(chromedp.Focus(chromedp.ID("verify")), chromedp.KeyEvent(kb.Enter)) // by keyboard
	p.wait(`#verify-result[data-ok="true"]`)
	p.do(chromedp.SetValue(chromedp.ID("proof-index"), "2"), chromedp.Click(chromedp.ID("prove")))
	p.wait(`#proof-result.ok`)
	if got := p.text("#proof-result"); !strings.Contains(got, "Included") || !strings.Contains(got, "signature") {
		t.Errorf("proof: %q", got)
	}
	p.accessible("chain")
	p.scrollTo("h-verify")
	p.screenshot("chain")
	tamper(t, ch.chains["agent.net"], 3)
	p.do(chromedp.Click(chromedp.ID("verify")))
	p.wait(`#verify-result[data-ok="false"]`)
	if got := p.text("#verify-result"); !strings.Contains(got, "Broken") || !strings.Contains(got, "seq 3") {
		t.Errorf("verify of a tampered chain: %q", got)
	}
	p.screenshot("chain-broken")
}

// largePlan makes about 2n+6 events: n calls of a capability, each a call
// and a result in the chain.
func largePlan(n int) Submission {
	return Submission{File: "large.rtfs", Plan: fmt.Sprintf(`(plan "large" :body
  (step "count" (loop [i 0] (if (< i %d) (do (call :ccos.math.add i 1) (recur (inc i))) i))))`, n)}
}

// A run of more than 5,000 events renders: every event is read, each long
// table shows its first rows and more on request.
func TestConsoleLargeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a run of 5,000 events")
	}
	ch := newConsoleHarness(t)
	p := newBrowserPage(t, ch.http)
	run := ch.run(t, "agent.min", largePlan(2500))
	if run.Status != StatusSucceeded {
		t.Fatalf("large run: %+v", run)
	}
	p.open("#/runs/" + run.ID)
	p.wait(`main[data-state="ended"]`)
	n := eval[int](p, `Number(document.getElementById("main").dataset.events)`)
	if n < 5000 {
		t.Fatalf("%d events rendered, want at least 5000", n)
	}
	rows := func() int { return eval[int](p, `document.querySelectorAll("#events tbody tr").length`) }
	if got := rows(); got != 200 {
		t.Errorf("%d event rows drawn at first, want 200", got)
	}
	p.do(chromedp.Focus(chromedp.CSS("#h-events ~ div .more button")), chromedp.KeyEvent(kb.Enter))
	p.do(chromedp.WaitReady(chromedp.CSS("#events tbody tr:nth-child(700)")))
	if got := rows(); got != 700 {
		t.Errorf("%d event rows after showing more, want 700", got)
	}
	if got := eval[string](p, `document.querySelector("#h-calls ~ div .more span").textContent`); got != "Showing 200 of 2500." {
		t.Errorf("calls note: %q", got)
	}
	t.Logf("%d events: page ready %s ms after navigation", n, eval[string](p, `document.getElementById("main").dataset.loadedMs`))
}

// BenchmarkConsoleRunPage loads the page of a run of about 5,000 events in
// chromium (navigation to every event drawn), beside the baseline of the
// same browser reading the same events from the API without drawing them.
func BenchmarkConsoleRunPage(b *testing.B) {
	ch := newConsoleHarness(b)
	p := newBrowserPage(b, ch.http)
	run := ch.run(b, "agent.min", largePlan(2500))
	var page, stream float64
	var longest []float64
	for i := 0; i < b.N; i++ {
		p.open("#/runs/" + run.ID)
		p.wait(`main[data-state="ended"]`)
		page += eval[float64](p, `Number(document.getElementById("main").dataset.loadedMs)`)
		longest = append(longest, eval[float64](p, `new Promise((done) => {
		  let m = 0;
		  new PerformanceObserver((l) => { for (const e of l.getEntries()) m = Math.max(m, e.duration); }).observe({type: "longtask", buffered: true});
		  setTimeout(() => done(m), 100);
		})`))
		stream += eval[float64](p, `(async () => {
		  const t = performance.now();
		  const r = await fetch("/v1/runs/`+run.ID+`/events");
		  const text = await r.text();
		  if (!text.includes("event: end")) throw new Error("no end");
		  return performance.now() - t;
		})()`)
	}
	n := float64(b.N)
	b.ReportMetric(page/n, "page-ms")
	b.ReportMetric(stream/n, "stream-ms")
	b.ReportMetric(page/stream, "page/stream")
	// The longest main-thread task of each load (what a user waits for
	// when the page does not answer): the median and the worst.
	slices.Sort(longest)
	b.ReportMetric(longest[len(longest)/2], "longest-task-ms")
	b.ReportMetric(longest[len(longest)-1], "worst-task-ms")
	events := eval[float64](p, `Number(document.getElementById("main").dataset.events)`)
	b.ReportMetric(events, "events")
}
