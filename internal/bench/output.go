package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine describes where a run was made: the figures mean little without
// it.
type Machine struct {
	// CPUs is the number of CPUs the process may run on, as nproc counts
	// them.
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

// detectMachine describes this machine; the CPU model comes from
// /proc/cpuinfo and is "unknown" where there is none.
func detectMachine() Machine {
	return Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel:   cpuModel(),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// cpuTimes are the machine's CPU times since boot, in clock ticks, as the
// first line of /proc/stat counts them.
type cpuTimes struct{ total, steal uint64 }

// readCPUTimes reads the machine's CPU times; ok is false where there is
// no /proc/stat.
func readCPUTimes() (t cpuTimes, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest ...]:
	// guest time is counted in user time already.
	if len(fields) < 9 || fields[0] != "cpu" {
		return t, false
	}
	for i, f := range fields[1:9] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return t, false
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t, true
}

// stolen returns the fraction of the CPU time between t and later that
// the hypervisor gave to other machines: time the phase could not run.
func (t cpuTimes) stolen(later cpuTimes) float64 {
	if later.total <= t.total {
		return 0
	}
	return float64(later.steal-t.steal) / float64(later.total-t.total)
}

// WriteTable writes the machine and one Markdown table row per phase, ready
// to paste into docs/performance.md.
func (r Results) WriteTable(w io.Writer) error {
	m := r.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %d CPUs (nproc), GOMAXPROCS %d, %s, %s %s/%s\n\n",
		m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.OS, m.Arch)
	b.WriteString("| phase | store | variant | count | errors | time | per second | ratio | p50 | p99 | max | what |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, p := range r.Phases {
		p50, p99, pmax := "-", "-", "-"
		if l := p.Latency; l != nil {
			p50, p99, pmax = millis(l.P50), millis(l.P99), millis(l.Max)
		}
		rate, ratio := "-", "-"
		if p.PerSecond > 0 {
			rate = strconv.FormatFloat(p.PerSecond, 'f', 0, 64)
		}
		if p.Ratio > 0 {
			ratio = strconv.FormatFloat(p.Ratio, 'f', 3, 64)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %.1f s | %s | %s | %s | %s | %s | %s |\n",
			p.Phase, p.Store, cmp.Or(p.Variant, "-"), p.Count, p.Errors, p.Elapsed.Seconds(), rate, ratio, p50, p99, pmax, p.What)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// millis formats d in milliseconds with two decimals, so that a column of
// latencies lines up and compares at a glance.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}
