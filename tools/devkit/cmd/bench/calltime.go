package main

// calltime.go: the servers' own measure of each call's time in the server (kit/calltime's
// histogram at /metrics), read before and after a run; the difference is that run's.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/iov-platform/iov/kit/calltime"
)

// callTimes is a cumulative histogram of calls' times in the server.
type callTimes struct {
	bounds []float64 // upper bounds, seconds, ascending
	cum    []uint64  // calls at or below each bound
	count  uint64    // every call, the ones above the last bound included
}

// scrapeCallTimes reads the histogram from a server's /metrics.
func scrapeCallTimes(ctx context.Context, url string) (callTimes, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return callTimes{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return callTimes{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return callTimes{}, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return callTimes{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	mf := mfs[calltime.MetricName]
	if mf == nil || len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetHistogram() == nil {
		return callTimes{}, fmt.Errorf("scrape %s: no %s histogram", url, calltime.MetricName)
	}
	return fromHistogram(mf.GetMetric()[0].GetHistogram()), nil
}

func fromHistogram(h *dto.Histogram) callTimes {
	ct := callTimes{count: h.GetSampleCount()}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) { // the text format lists +Inf; count has it
			continue
		}
		ct.bounds = append(ct.bounds, b.GetUpperBound())
		ct.cum = append(ct.cum, b.GetCumulativeCount())
	}
	return ct
}

// since is the calls observed after before.
func (ct callTimes) since(before callTimes) (callTimes, error) {
	if len(before.bounds) == 0 {
		return ct, nil
	}
	if len(before.bounds) != len(ct.bounds) || before.count > ct.count {
		return callTimes{}, errors.New("call-time histogram changed or was reset between two scrapes")
	}
	d := callTimes{bounds: ct.bounds, cum: make([]uint64, len(ct.cum)), count: ct.count - before.count}
	for i := range ct.cum {
		d.cum[i] = ct.cum[i] - before.cum[i]
	}
	return d, nil
}

// quantile interpolates linearly inside the bucket the q-th call falls in (as Prometheus'
// histogram_quantile does), so it is within one bucket's width (15%) of the true value.
// ok is false when there are no calls or the quantile lies above the last bound.
func (ct callTimes) quantile(q float64) (d time.Duration, ok bool) {
	if ct.count == 0 {
		return 0, false
	}
	rank := q * float64(ct.count)
	lower, below := 0.0, uint64(0)
	for i, b := range ct.bounds {
		if float64(ct.cum[i]) >= rank {
			in := ct.cum[i] - below
			frac := 1.0
			if in > 0 {
				frac = (rank - float64(below)) / float64(in)
			}
			return time.Duration((lower + (b-lower)*frac) * float64(time.Second)), true
		}
		lower, below = b, ct.cum[i]
	}
	return 0, false
}
