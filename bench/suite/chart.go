package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours of the series, one per column (and the raw sync ceiling).
var seriesColor = map[string]color.RGBA{
	"bdb":     {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"leveldb": {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"python":  {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"ceiling": {R: 0x55, G: 0x55, B: 0x55, A: 0xff},
	"rawsync": {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	"proto":   {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

var seriesName = map[string]string{
	"bdb":     "durusbdb bdb (durable)",
	"leveldb": "durusbdb leveldb (durable)",
	"python":  "Durus 4.3 (not durable)",
	"ceiling": "ceiling",
	"rawsync": "raw libdb DB_TXN_SYNC",
	"proto":   "trivial server: commit token, no storage",
}

// chart draws performance.png: commits/s against connections for each
// server and the raw libdb ceilings (left), loads/s bars (right).
func (s *suite) chart(path string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("chart: %v", p)
		}
	}()
	left, err := s.commitPlot()
	if err != nil {
		return err
	}
	right, err := s.loadPlot()
	if err != nil {
		return err
	}
	const width, height = 14 * vg.Inch, 6 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 3, PadTop: vg.Inch / 6, PadBottom: vg.Inch / 6,
		PadLeft: vg.Inch / 6, PadRight: vg.Inch / 3}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// commitPlot is the chart's left half: durable commits/s by connections,
// one line per server and ceiling.
func (s *suite) commitPlot() (*plot.Plot, error) {
	left := plot.New()
	left.Title.Text = "durable commits/s of 1 small record"
	left.X.Label.Text = "connections (threads for raw libdb)"
	left.Y.Label.Text = "commits/s"
	left.Legend.Top = true
	left.Legend.Left = true
	left.X.Tick.Marker = plot.ConstantTicks(connTicks(s.commitConns))
	left.Add(plotter.NewGrid())
	var maxY float64
	lines := [][3]string{} // name, row prefix, column
	for _, col := range s.serverCols() {
		lines = append(lines, [3]string{seriesName[col], "commits", col})
	}
	lines = append(lines, [3]string{"raw libdb group commit", "commits", "ceiling"},
		[3]string{seriesName["proto"], "proto", "ceiling"}, [3]string{seriesName["rawsync"], "rawsync", "ceiling"})
	for _, ln := range lines {
		y, err := s.addCommitLine(left, ln[0], ln[1], ln[2])
		if err != nil {
			return nil, err
		}
		maxY = max(maxY, y)
	}
	if maxY > 0 {
		left.X.Scale = plot.LogScale{}
	}
	left.Y.Min = 0
	left.Y.Max = max(1, maxY*1.45)
	left.Y.Tick.Marker = thousandTicks{}
	return left, nil
}

// addCommitLine adds the line of rows prefix<conns>, column col, to p and
// returns its largest value.
func (s *suite) addCommitLine(p *plot.Plot, name, prefix, col string) (float64, error) {
	var pts plotter.XYs
	var maxY float64
	for _, c := range s.commitConns {
		if v, ok := s.res.get(fmt.Sprintf("%s%d", prefix, c), col); ok {
			pts = append(pts, plotter.XY{X: float64(c), Y: v})
			maxY = max(maxY, v)
		}
	}
	if len(pts) == 0 {
		return 0, nil
	}
	l, sc, err := plotter.NewLinePoints(pts)
	if err != nil {
		return 0, err
	}
	key := col
	if prefix != "commits" {
		key = prefix
	}
	l.Color, sc.Color = seriesColor[key], seriesColor[key]
	l.Width = vg.Points(2)
	if col == "ceiling" {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Add(l, sc)
	p.Legend.Add(name, l, sc)
	return maxY, nil
}

// loadPlot is the chart's right half: warm loads/s, bars per server.
func (s *suite) loadPlot() (*plot.Plot, error) {
	right := plot.New()
	right.Title.Text = "loads/s (warm)"
	right.Y.Label.Text = "loads/s"
	right.Legend.Top = true
	right.Legend.Left = true
	right.Add(plotter.NewGrid())
	groups := []struct{ key, name string }{
		{"loads1_100", "1 conn 100 B"}, {"loads8_100", "8 conns 100 B"},
		{"loads1_10k", "1 conn 10 KB"}, {"loads8_10k", "8 conns 10 KB"},
	}
	cols := append(s.serverCols(), "ceiling")
	w := vg.Points(12)
	maxY := 0.0
	for i, col := range cols {
		vals := make(plotter.Values, len(groups))
		any := false
		for j, g := range groups {
			if v, ok := s.res.get(g.key, col); ok {
				vals[j] = v
				maxY = max(maxY, v)
				any = true
			}
		}
		if !any {
			continue
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = seriesColor[col]
		bars.LineStyle.Width = 0
		bars.Offset = vg.Length(float64(i)-float64(len(cols)-1)/2) * w
		right.Add(bars)
		name := seriesName[col]
		if col == "ceiling" {
			name = "trivial Go-map server"
		}
		right.Legend.Add(name, bars)
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.name
	}
	right.NominalX(names...)
	right.Y.Min = 0
	right.Y.Max = max(1, maxY*1.45)
	right.Y.Tick.Marker = thousandTicks{}
	return right, nil
}

// connTicks labels the connection counts on the x axis.
func connTicks(conns []int) []plot.Tick {
	out := make([]plot.Tick, len(conns))
	for i, c := range conns {
		out[i] = plot.Tick{Value: float64(c), Label: fmt.Sprint(c)}
	}
	return out
}

// thousandTicks are plot.DefaultTicks labelled with thousands separators.
type thousandTicks struct{}

// Ticks implements plot.Ticker.
func (thousandTicks) Ticks(lo, hi float64) []plot.Tick {
	t := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range t {
		if t[i].Label != "" {
			t[i].Label = thousands(int64(t[i].Value))
		}
	}
	return t
}
