package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kuzet/kuzet/dispatch/journal"
)

type journalRecord = journal.Record

// Metrics are Kuzet's Prometheus metrics, all named kuzet_*.
type Metrics struct {
	Registry *prometheus.Registry

	requestDuration *prometheus.HistogramVec
	eventsApplied   prometheus.Counter
	wsClients       prometheus.Gauge
	wsCutOff        *prometheus.CounterVec
	wsSent          prometheus.Counter
	wsFanout        prometheus.Histogram
}

// NewMetrics registers Kuzet's metrics on reg (a new registry if nil), with
// the Go and process collectors.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &Metrics{
		Registry: reg,
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kuzet_http_request_duration_seconds",
			Help:    "Time to answer an API request, by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "code"}),
		eventsApplied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_events_applied_total",
			Help: "Journal events applied to this node's projection (from every node).",
		}),
		wsClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kuzet_websocket_clients",
			Help: "Connected WebSocket clients.",
		}),
		wsCutOff: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kuzet_websocket_queue_drops_total",
			Help: "WebSocket clients cut off, by reason (queue_full: fell behind; write_timeout: stopped reading).",
		}, []string{"reason"}),
		wsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_websocket_messages_sent_total",
			Help: "Messages written to WebSocket clients.",
		}),
		wsFanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kuzet_websocket_fanout_seconds",
			Help:    "Time from an event's journal timestamp to its write to a client socket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	reg.MustRegister(m.requestDuration, m.eventsApplied, m.wsClients, m.wsCutOff, m.wsSent, m.wsFanout)
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// JournalCounter wraps a journal so that appends are counted and timed.
type JournalCounter struct {
	journal.Journal
	appended prometheus.Counter
	duration prometheus.Histogram
}

// CountJournal registers kuzet_journal_events_appended_total and
// kuzet_journal_append_duration_seconds for j.
func (m *Metrics) CountJournal(j journal.Journal) *JournalCounter {
	c := &JournalCounter{
		Journal: j,
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kuzet_journal_events_appended_total",
			Help: "Events this node appended to the journal (acknowledged as durable).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kuzet_journal_append_duration_seconds",
			Help:    "Time for the journal to make one command durable (includes group-commit wait).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
	}
	m.Registry.MustRegister(c.appended, c.duration)
	return c
}
