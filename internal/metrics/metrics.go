// Package metrics exposes tunehook's Prometheus metrics: what lives in the
// database (tasks by status, callbacks by state, queue lag), read from the
// store at scrape time so that every instance sharing a database reports
// the same, and what happens in this process (stage durations, callback
// attempts), fed by the workers' hooks.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// statsTimeout bounds the store read of a scrape.
const statsTimeout = 5 * time.Second

// Metrics holds the metrics of one process. Its Observe methods are safe
// for concurrent use.
type Metrics struct {
	reg             *prometheus.Registry
	stages          *prometheus.HistogramVec
	attempts        *prometheus.CounterVec
	attemptDuration prometheus.Histogram
	log             *slog.Logger
}

// New returns the metrics of a process whose store is store; log, if not
// nil, gets the errors of scrapes.
func New(store task.Store, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tunehook_stage_duration_seconds",
			Help: "Time a stage took in this process, from its start to its commit, pauses between stages excluded; stage error is the commit of a failure.",
			// A text stage takes milliseconds, a track several seconds.
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60},
		}, []string{"stage"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tunehook_callback_attempts_total",
			Help: "Callback attempts this process made, by outcome: delivered, failed (a retry follows) or exhausted (the last one failed).",
		}, []string{"outcome"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tunehook_callback_attempt_duration_seconds",
			Help: "Duration of the callback attempts this process made, connect to last byte.",
			// Up to the longest callback timeouts in use.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60},
		}),
		log: log,
	}
	// Every label value exists from the start, so that rates work from the
	// first scrape.
	for _, s := range []task.Stage{task.StageText, task.StageFirst, task.StageComplete, task.StageError} {
		m.stages.WithLabelValues(string(s))
	}
	for _, o := range outcomes {
		m.attempts.WithLabelValues(o)
	}
	m.reg.MustRegister(m.stages, m.attempts, m.attemptDuration, &storeCollector{store: store},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// outcomes names the attempts by the state they leave their callback in.
var outcomes = map[task.DeliveryState]string{
	task.DeliveryDelivered: "delivered",
	task.DeliveryPending:   "failed",
	task.DeliveryExhausted: "exhausted",
}

// ObserveStage counts a stage committed; for worker.RunnerConfig.OnStage.
func (m *Metrics) ObserveStage(e worker.StageEvent) {
	m.stages.WithLabelValues(string(e.Stage)).Observe(e.Took.Seconds())
}

// ObserveAttempt counts a callback attempt; for
// worker.DispatcherConfig.OnAttempt.
func (m *Metrics) ObserveAttempt(e worker.AttemptEvent) {
	m.attempts.WithLabelValues(outcomes[e.State]).Inc()
	m.attemptDuration.Observe(e.Took.Seconds())
}

// Handler serves the metrics in the Prometheus text format. When the store
// cannot be read, the other metrics are still served, and the error is
// logged.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// storeCollector reads the counts of the store at every scrape.
type storeCollector struct {
	store task.Store
}

var (
	tasksDesc = prometheus.NewDesc("tunehook_tasks",
		"Tasks in the database by record-info status.", []string{"status"}, nil)
	callbacksDesc = prometheus.NewDesc("tunehook_callbacks",
		"Callbacks in the database by delivery state: pending, delivered, exhausted.", []string{"state"}, nil)
	lagDesc = prometheus.NewDesc("tunehook_queue_lag_seconds",
		"How long the oldest claimable task or callback has been due and waits for a worker; 0 when none waits.", []string{"queue"}, nil)
)

// statuses and states are reported even at 0, so that their series exist.
var (
	statuses = []task.Status{task.StatusPending, task.StatusTextSuccess, task.StatusFirstSuccess, task.StatusSuccess,
		task.StatusCreateTaskFailed, task.StatusGenerateAudioFailed, task.StatusSensitiveWordError}
	states = []task.DeliveryState{task.DeliveryPending, task.DeliveryDelivered, task.DeliveryExhausted}
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tasksDesc
	ch <- callbacksDesc
	ch <- lagDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		for _, d := range []*prometheus.Desc{tasksDesc, callbacksDesc, lagDesc} {
			ch <- prometheus.NewInvalidMetric(d, err)
		}
		return
	}
	for _, s := range withKeys(statuses, st.Tasks) {
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(st.Tasks[s]), string(s))
	}
	for _, s := range withKeys(states, st.Callbacks) {
		ch <- prometheus.MustNewConstMetric(callbacksDesc, prometheus.GaugeValue, float64(st.Callbacks[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, st.TaskLag.Seconds(), "tasks")
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, st.CallbackLag.Seconds(), "callbacks")
}

// withKeys returns known followed by the keys of counts it lacks, such as
// a status written by a newer version.
func withKeys[K ~string](known []K, counts map[K]int) []K {
	all := slices.Clone(known)
	for k := range counts {
		if !slices.Contains(all, k) {
			all = append(all, k)
		}
	}
	return all
}
