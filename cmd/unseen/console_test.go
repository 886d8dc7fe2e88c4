package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// chromiumEnv names the Chromium binary the browser tests drive. Set, the
// tests must run (a missing or broken browser fails them); unset, they look
// for Debian's /usr/bin/chromium and skip, saying how, if there is none.
const chromiumEnv = "UNSEEN_TEST_CHROMIUM"

// screenshotsEnv, if set, is the folder the browser test saves its
// screenshots to (default: a new temporary folder, logged, left in place).
const screenshotsEnv = "UNSEEN_TEST_SCREENSHOTS"

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(chromiumEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s=%s: %v", chromiumEnv, p, err)
		}
		return p
	}
	if testing.Short() {
		t.Skipf("browser test skipped in -short mode (set %s to run it anyway)", chromiumEnv)
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skipf("no Chromium found: apt-get install chromium, then set %s=/usr/bin/chromium (as .ci/run does)", chromiumEnv)
	return ""
}

// consoleFed is a real federation for the console: hrss.benefits (rows
// 0..239) and civil.allowance (conditional; rows 60..239 in two of the
// three districts and five in the third), so a grouped intersection_stats
// has one group below k = 10 (suppressed) and its chart shows it hidden.
type consoleFed struct {
	base     string
	tokens   map[string]string
	keyFiles map[string]string // signing key files (PEM), by user
	owner    string            // civil's data owner
	analyst  *client.Client
}

func startConsoleFed(t *testing.T) *consoleFed {
	t.Helper()
	civil := []int{}
	for i := 60; i < 240; i++ {
		if i%3 != 2 || i < 75 {
			civil = append(civil, i)
		}
	}
	rows := map[string][]int{"hrss.benefits": rangeInts(0, 240), "civil.allowance": civil}
	fed := nodetest.Start(t, rows, func(d *policy.Dataset) {
		d.MinCount = 10
		if d.Name == "civil.allowance" {
			d.Sharing = "conditional"
			d.Classification = "core"
			d.Description = "城乡低保 (test data)"
		}
	})
	dir := t.TempDir()
	owner := nodetest.Owner("civil")
	f := &consoleFed{tokens: map[string]string{}, keyFiles: map[string]string{}, owner: owner}
	for _, n := range []string{"alice", nodetest.Reviewer, owner, "aldo", "adam"} {
		f.tokens[n] = "console-test-token-" + n
	}
	for _, n := range []string{nodetest.Reviewer, owner} {
		p := filepath.Join(dir, n+".ed25519")
		require.NoError(t, attest.WritePrivateKeyFile(p, nodetest.PrivateKey(n)))
		f.keyFiles[n] = p
	}
	cfg := &coordinator.Config{Workers: 2, HEState: filepath.Join(dir, "he.json"), SigningKeyPriv: nodetest.PrivateKey("coordinator")}
	cfg.Users = []api.User{
		{Name: "alice", Role: api.RoleAnalyst, Department: "hrss", TokenSHA256: api.HashToken(f.tokens["alice"])},
		{Name: nodetest.Reviewer, Role: api.RoleReviewer, Department: "data_bureau", TokenSHA256: api.HashToken(f.tokens[nodetest.Reviewer]), SigningKey: nodetest.PublicKey(nodetest.Reviewer)},
		{Name: owner, Role: api.RoleDataOwner, Department: "civil", TokenSHA256: api.HashToken(f.tokens[owner]), SigningKey: nodetest.PublicKey(owner)},
		{Name: "aldo", Role: api.RoleAuditor, Department: "data_bureau", TokenSHA256: api.HashToken(f.tokens["aldo"])},
		{Name: "adam", Role: api.RoleAdmin, Department: "data_bureau", TokenSHA256: api.HashToken(f.tokens["adam"])},
	}
	for _, d := range []string{"civil", "hrss"} {
		cfg.Nodes = append(cfg.Nodes, coordinator.NodeRef{Department: d, URL: fed.Clients[d].BaseURL, Token: nodetest.Token})
	}
	store, err := boltstore.Open(filepath.Join(dir, "coordinator.db"), boltstore.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, _, wait, err := serveCoordinator(ctx, cfg, store, log, 64)
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		wait()
		store.Close()
	})
	f.base = base
	f.analyst = client.New(base, f.tokens["alice"])
	return f
}

// browser is one headless Chromium; each role gets its own tab (its own
// sessionStorage, as two people's browsers would have).
type browser struct {
	t       *testing.T
	base    string
	ctx     context.Context
	shots   string
	mu      sync.Mutex
	errs    []string // JS exceptions, console errors, CSP violations
	foreign []string // requests to anywhere but the coordinator
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromiumPath(t)
	shots := os.Getenv(screenshotsEnv)
	if shots == "" {
		var err error
		shots, err = os.MkdirTemp("", "unseen-console-screenshots-")
		require.NoError(t, err)
	} else {
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}
	t.Logf("console screenshots: %s", shots)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, base: base, ctx: ctx, shots: shots}
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	require.NoError(t, chromedp.Do(ctx), "starting %s", path)
	return b
}

// tab opens a new tab on the console, watching it for errors and for
// requests that leave the coordinator.
func (b *browser) tab() context.Context {
	b.t.Helper()
	ctx, _ := chromedp.NewContext(b.ctx)
	require.NoError(b.t, chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errs = append(b.errs, "exception: "+msg)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.errs = append(b.errs, "console.error: "+strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			// CSP violations and blocked loads are reported here; a 4xx
			// answer the console asked for (e.g. a refused token) is not.
			if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
				b.errs = append(b.errs, string(e.Entry.Source)+": "+e.Entry.Text)
			}
		case *network.EventRequestWillBeSent:
			u := e.Request.URL
			if !strings.HasPrefix(u, b.base+"/") && !strings.HasPrefix(u, "data:") {
				b.foreign = append(b.foreign, u)
			}
		}
	}))
	return ctx
}

func (b *browser) do(ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		b.shot(ctx, "failed")
		b.t.Fatal(err)
	}
}

func eval[T any](b *browser, ctx context.Context, js string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js, opts...))
	require.NoError(b.t, err, "evaluating %.200s", js)
	return v
}

// login opens the console in ctx and logs in with token by keyboard
// (typing it and pressing Enter).
func (b *browser) login(ctx context.Context, token string) {
	b.t.Helper()
	b.do(ctx,
		chromedp.Navigate(b.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=token]`), token+"\r"),
		chromedp.WaitVisible(chromedp.CSS(`#logout`)),
	)
}

func (b *browser) goTo(ctx context.Context, hash string) {
	b.t.Helper()
	eval[string](b, ctx, `location.hash = `+jsString(hash))
}

// waitText waits until the element sel shows text containing want.
func (b *browser) waitText(ctx context.Context, sel, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.innerText.includes(%s); })()`, jsString(sel), jsString(want))
	// Generous: a job reaching review runs PSI and homomorphic steps, slow
	// under -race on a loaded 2-core machine.
	c, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		got := eval[string](b, ctx, fmt.Sprintf(`(document.querySelector(%s) || {innerText: "(no such element)"}).innerText`, jsString(sel)))
		b.shot(ctx, "failed")
		b.t.Fatalf("waiting for %q in %s: %v; it shows:\n%s", want, sel, err, got)
	}
}

// waitJS waits until js (an expression) is true in the page.
func (b *browser) waitJS(ctx context.Context, js string) {
	b.t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.shot(ctx, "failed")
		b.t.Fatalf("waiting for %s: %v", js, err)
	}
}

func (b *browser) text(ctx context.Context, sel string) string {
	b.t.Helper()
	return eval[string](b, ctx, fmt.Sprintf(`document.querySelector(%s).innerText`, jsString(sel)))
}

// choose sets a select's value as a person would, firing change.
func (b *browser) choose(ctx context.Context, sel, value string) {
	b.t.Helper()
	b.do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)))
	ok := eval[bool](b, ctx, fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (![...e.options].some(o => o.value === %s)) return false;
		e.value = %s; e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, jsString(sel), jsString(value), jsString(value)))
	require.True(b.t, ok, "%s offers no option %q", sel, value)
}

// options lists a select's option values.
func (b *browser) options(ctx context.Context, sel string) []string {
	b.t.Helper()
	return eval[[]string](b, ctx, fmt.Sprintf(`[...document.querySelector(%s).options].map(o => o.value)`, jsString(sel)))
}

func (b *browser) count(ctx context.Context, sel string) int {
	b.t.Helper()
	return eval[int](b, ctx, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)))
}

// shot saves a full-page screenshot as name.png.
func (b *browser) shot(ctx context.Context, name string) {
	b.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// accessible fails if a visible form control has no accessible name or a
// button no text, on the page as it stands.
func (b *browser) accessible(ctx context.Context, page string) {
	b.t.Helper()
	bad := eval[[]string](b, ctx, `[...document.querySelectorAll("input, select, textarea, button")]
		.filter(e => e.type !== "hidden" && e.offsetParent !== null)
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby") && !(e.tagName === "BUTTON" && e.innerText.trim()))
		.map(e => e.outerHTML.slice(0, 120))`)
	require.Empty(b.t, bad, "%s: controls without an accessible name", page)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestConsole drives the whole flow in Chromium against a real coordinator
// and real nodes: the admin runs the key ceremony, the analyst submits a
// grouped intersection_stats from the form, the data owner consents (signed
// in the browser), the analyst watches it run, the reviewer reads the
// checks and the chart and approves (signed in the browser), the analyst
// reads the released result and its chart, the auditor filters and
// verifies the chain; the owner's lineage, the catalog in both languages,
// and canon.js against the Go vectors. It asserts on what the pages show.
func TestConsole(t *testing.T) {
	chromiumPath(t) // skip before starting anything, if there is no browser
	f := startConsoleFed(t)
	b := newBrowser(t, f.base)

	// The console's headers: a strict CSP, nothing sniffed or framed.
	resp, err := http.Get(f.base + "/console/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "script-src 'self'")
	require.NotContains(t, csp, "unsafe-inline")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))

	// canon.js reproduces the Go encodings byte for byte.
	vectors, err := os.ReadFile(filepath.Join("..", "..", "api", "console", "testdata", "vectors.json"))
	require.NoError(t, err)
	vt := b.tab()
	b.do(vt, chromedp.Navigate(f.base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	failures := eval[[]string](b, vt, `(async (v) => {
		const c = await import("/console/canon.js");
		const bad = [];
		for (const s of v.strings) if (c.goString(s.in) !== s.out) bad.push("string " + JSON.stringify(s.in) + ": " + c.goString(s.in) + " != " + s.out);
		for (const s of v.specs) {
			const spec = c.parseExact(s.shown);
			if (c.specJSON(spec) !== s.canonical) bad.push("spec: " + c.specJSON(spec) + " != " + s.canonical);
			const h = c.hex(await c.specHash(spec));
			if (h !== s.hash) bad.push("spec hash " + h + " != " + s.hash);
		}
		const k = await c.importSigningKey(v.key.pem);
		if (c.publicKeyText(k.pub) !== v.key.public) bad.push("public key " + c.publicKeyText(k.pub));
		if (await c.fingerprint(k.pub) !== v.key.fingerprint) bad.push("fingerprint");
		for (const [kind, list, msg] of [["approval", v.approvals, c.approvalMessage], ["consent", v.consents, c.consentMessage]]) {
			for (const a of list) {
				const m = msg(a.statement);
				if (c.hex(m) !== a.message) bad.push(kind + " message " + c.hex(m) + " != " + a.message);
				const sig = c.hex(await c.sign(k.key, m));
				if (sig !== a.signature) bad.push(kind + " signature " + sig + " != " + a.signature);
			}
		}
		for (const r of v.raw) {
			const got = c.rawValue(r.doc, r.path);
			if (got !== r.raw) bad.push("raw " + r.path.join(".") + " of " + r.doc + ": " + got + " != " + r.raw);
		}
		return bad;
	})(`+string(vectors)+`)`, chromedp.EvalAwaitPromise)
	require.Empty(t, failures, "canon.js disagrees with the Go vectors")

	// Admin: node status, then the key ceremony from the page.
	admin := b.tab()
	b.login(admin, f.tokens["adam"])
	b.waitText(admin, "#keys", "尚未进行密钥仪式")
	b.waitText(admin, "#ready", "store")
	b.accessible(admin, "admin")
	b.do(admin, chromedp.SetValue(chromedp.CSS(`#threshold`), "2"), chromedp.Click(chromedp.CSS(`#keys-init`)))
	b.waitText(admin, "#keys-epoch", "第 1 代密钥")
	b.waitText(admin, "#keys-epoch", "解密需要 2/2 个节点")
	require.Contains(t, b.text(admin, "#nodes"), "civil")
	require.Contains(t, b.text(admin, "#nodes"), "hrss")
	b.shot(admin, "1-admin-keys-and-nodes")

	// Analyst: the form offers only what the catalog and policy allow.
	analyst := b.tab()
	b.login(analyst, f.tokens["alice"])
	b.waitText(analyst, "#submit-form", "提交作业")
	b.choose(analyst, `select[name=type]`, "intersection_stats")
	b.do(analyst, chromedp.SendKeys(chromedp.CSS(`textarea[name=purpose]`), "低保核查 2026：按区统计同时领取失业金的人数与金额"))
	b.choose(analyst, `select[name=dataset-0]`, "hrss.benefits")
	// One input per department: the second input no longer offers hrss.
	require.Equal(t, []string{"", "civil.allowance"}, b.options(analyst, `select[name=dataset-1]`))
	b.choose(analyst, `select[name=dataset-1]`, "civil.allowance")
	require.Equal(t, []string{"id_number"}, b.options(analyst, `select[name=key-0]`))
	// A filter from the builder: only filter columns are offered.
	b.do(analyst, chromedp.Click(chromedp.CSS(`fieldset.input .add-cond`)))
	require.Equal(t, []string{"district", "amount"}, b.options(analyst, `.cond-column`))
	b.choose(analyst, `.cond-column`, "amount")
	b.choose(analyst, `.cond-op`, ">=")
	b.do(analyst, chromedp.SendKeys(chromedp.CSS(`.cond-value`), "0"))
	b.waitText(analyst, ".filter-text", "amount >= 0")
	b.choose(analyst, `.value-dataset`, "hrss.benefits")
	require.Equal(t, []string{"amount"}, b.options(analyst, `.value-column`), "only value columns")
	b.choose(analyst, `.group-dataset`, "hrss.benefits")
	require.Equal(t, []string{"", "district"}, b.options(analyst, `.group-column`), "only group-by columns")
	b.choose(analyst, `.group-column`, "district")
	b.waitText(analyst, "#spec-preview", `"group_by"`)
	b.accessible(analyst, "submit")
	b.shot(analyst, "2-analyst-submit")
	b.do(analyst, chromedp.Click(chromedp.CSS(`#submit-job`)))
	b.waitText(analyst, "#submit-result", "待数据方同意")
	id := b.text(analyst, "#submit-result a")
	require.True(t, strings.HasPrefix(id, "j_"), id)
	j, err := f.analyst.Job(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "amount >= 0", j.Spec.Inputs[0].Filter)
	require.Equal(t, &policy.ColumnRef{Dataset: "hrss.benefits", Column: "district"}, j.Spec.GroupBy)

	// Data owner: the consent queue says what is asked, by whom, why, by
	// when; the consent is signed in the browser with the owner's key.
	owner := b.tab()
	b.login(owner, f.tokens[f.owner])
	card := `article[data-job="` + id + `"]`
	b.waitText(owner, card, "低保核查 2026")
	b.waitText(owner, card, "申请人：alice（hrss）")
	b.waitText(owner, card, "需要同意的数据集：civil.allowance")
	b.waitText(owner, card, "civil.allowance 使用的字段：id_number")
	b.waitText(owner, card, "答复截止：")
	b.accessible(owner, "consent")
	b.do(owner, chromedp.SetUploadFiles(chromedp.CSS(`.key-file`), []string{f.keyFiles[f.owner]}))
	b.waitText(owner, ".key-status", "与登记的签名公钥一致")
	b.shot(owner, "3-owner-consent")
	b.do(owner, chromedp.Click(chromedp.CSS(card+` .consent-approve`)))
	b.waitText(owner, card+" .consent-result", "已答复作业 "+id)
	j, err = f.analyst.Job(context.Background(), id)
	require.NoError(t, err)
	require.Len(t, j.Consents, 1)
	require.NotNil(t, j.Consents[0].Signed, "the consent was signed in the browser")
	require.NoError(t, attest.Keyring{f.owner: nodetest.PrivateKey(f.owner).Public().(ed25519.PublicKey)}.VerifyConsent(j.Consents[0].Signed))

	// Analyst: the job runs; the page follows it live to review.
	b.goTo(analyst, "#/job/"+id)
	b.waitText(analyst, "#job-state", "待审核")
	b.waitText(analyst, "main", "排队中")
	b.shot(analyst, "4-analyst-job-awaiting-review")
	b.goTo(analyst, "#/jobs")
	b.waitText(analyst, "#jobs", id)

	// Owner: the lineage of their dataset names the job.
	b.goTo(owner, "#/lineage")
	b.waitText(owner, "#lineage", id)
	b.waitText(owner, "#lineage", "alice")
	b.shot(owner, "5-owner-lineage")

	// Reviewer: the queue, the checks each explained, the chart, the
	// statement computed in the page, signed there.
	reviewer := b.tab()
	b.login(reviewer, f.tokens[nodetest.Reviewer])
	b.waitText(reviewer, "#review-queue", id)
	b.do(reviewer, chromedp.Focus(chromedp.CSS(`a.open-review`)), chromedp.KeyEvent("\r"))
	b.waitText(reviewer, "#checks", "min_count")
	require.Equal(t, b.count(reviewer, "#checks li"), b.count(reviewer, "#checks li p.explain"), "every check explained")
	explained := eval[[]string](b, reviewer, `[...document.querySelectorAll("#checks li p.explain")].map(e => e.innerText)`)
	for _, e := range explained {
		require.NotEmpty(t, strings.TrimSpace(e))
		require.NotContains(t, e, "没有给出", "a check the console cannot explain")
	}
	require.Equal(t, 1, b.count(reviewer, "#result svg.chart"), "a chart for the grouped result")
	require.GreaterOrEqual(t, b.count(reviewer, "#result svg.chart rect.bar:not(.suppressed)"), 1)
	require.GreaterOrEqual(t, b.count(reviewer, "#result svg.chart rect.bar.suppressed"), 1, "the suppressed group is drawn hidden")
	b.waitText(reviewer, "#result", "已隐藏")
	b.waitText(reviewer, "#stmt-verdict", "与协调方给出的声明一致")
	spec := j.Spec
	sh := spec.Hash()
	require.Equal(t, hex.EncodeToString(sh[:]), b.text(reviewer, "#stmt-spec"), "the page's spec hash is Go's")
	b.do(reviewer, chromedp.SetUploadFiles(chromedp.CSS(`.key-file`), []string{f.keyFiles[nodetest.Reviewer]}))
	b.waitText(reviewer, ".key-status", "与登记的签名公钥一致")
	b.do(reviewer, chromedp.SendKeys(chromedp.CSS(`#approve-comment`), "检查无误"))
	b.accessible(reviewer, "review")
	b.shot(reviewer, "6-reviewer-review")
	b.do(reviewer, chromedp.Click(chromedp.CSS(`#approve`)))
	b.waitText(reviewer, "#decision-result", "已发布")
	j, err = f.analyst.Job(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "released", string(j.State))
	require.NotNil(t, j.Approval)
	require.NoError(t, attest.Keyring{nodetest.Reviewer: nodetest.PrivateKey(nodetest.Reviewer).Public().(ed25519.PublicKey)}.VerifyApproval(j.Approval),
		"the approval signed in the browser verifies under the reviewer's key")

	// Analyst: the released result, its table and its chart.
	b.goTo(analyst, "#/job/"+id)
	b.waitText(analyst, "#result", "已发布的结果")
	b.waitText(analyst, "#result", "总计")
	b.waitText(analyst, "#result", "已隐藏")
	b.waitText(analyst, "#result", "检查无误")
	require.Equal(t, 1, b.count(analyst, "#result svg.chart"))
	r, err := f.analyst.Result(context.Background(), id)
	require.NoError(t, err)
	var res struct {
		Count int64 `json:"count"`
	}
	require.NoError(t, json.Unmarshal(r.Result, &res))
	require.Greater(t, res.Count, int64(0))
	b.waitText(analyst, "#result table", fmt.Sprintf("%d", res.Count))
	b.shot(analyst, "7-analyst-result")

	// Auditor: filter the chain by the job, and verify it.
	auditor := b.tab()
	b.login(auditor, f.tokens["aldo"])
	b.do(auditor, chromedp.SendKeys(chromedp.CSS(`#audit-job`), id), chromedp.Click(chromedp.CSS(`#audit-apply`)))
	// The filtered table: every row names the job, and it holds the
	// whole lifecycle (the ceremony's entries are left out).
	b.waitJS(auditor, `(() => { const rows = [...document.querySelectorAll("#audit-table tbody tr")];
		return rows.length > 0 && rows.every(r => r.cells[5].innerText === `+jsString(id)+`); })()`)
	b.waitText(auditor, "#audit-table", "job.released")
	b.waitText(auditor, "#audit-table", "job.submitted")
	require.NotContains(t, b.text(auditor, "#audit-table"), "keys.init", "the filter by job leaves other entries out")
	b.do(auditor, chromedp.Click(chromedp.CSS(`#audit-verify-btn`)))
	b.waitText(auditor, "#audit-verify", "哈希链完整")
	b.accessible(auditor, "audit")
	b.shot(auditor, "8-auditor-audit")

	// The catalog in Chinese (the default), then in English.
	b.goTo(analyst, "#/catalog")
	b.waitText(analyst, "#catalog", "有条件共享")
	b.waitText(analyst, "#catalog", "核心数据")
	b.waitText(analyst, "#catalog", "重要数据")
	b.shot(analyst, "9-catalog-zh")
	b.do(analyst, chromedp.Click(chromedp.CSS(`#lang`)))
	b.waitText(analyst, "main h2", "Catalog")
	b.waitText(analyst, "#catalog", "conditional")
	require.NotContains(t, b.text(analyst, "#catalog"), "有条件共享")
	b.shot(analyst, "10-catalog-en")
	b.do(analyst, chromedp.Click(chromedp.CSS(`#lang`)))
	b.waitText(analyst, "main h2", "数据目录")

	// A wrong token is refused on the login page, and nothing else shown.
	stranger := b.tab()
	b.do(stranger, chromedp.Navigate(f.base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)), chromedp.SendKeys(chromedp.CSS(`input[name=token]`), "not-a-token\r"))
	b.waitText(stranger, "main", "令牌无效")

	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(t, b.errs, "the console logged errors (JS exceptions or CSP violations)")
	require.Empty(t, b.foreign, "the console made requests to other origins")
}
