# bench/benchmarks.gnuplot: the chart of docs/benchmarks.md, from the data
# files bench/report.sh writes. Run as
#   gnuplot -e "datadir='DIR'; out='docs/benchmarks.png'" bench/benchmarks.gnuplot
#   DIR/fanout.dat   target deliveries_per_s p50_ms p99_ms
#   DIR/idle.dat     target rss_bytes_per_connection
#   DIR/targets.dat  "label" percent_of_target   (100 = just met)
set terminal pngcairo size 1400,1050 font "DejaVu Sans,11"
set output out
set multiplot layout 2,2 title "switchboard vs Redis pub/sub vs mosquitto (MQTT over WebSocket), same run, same machine" font ",13"

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.8
set grid ytics
set key off
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0

# A panel whose data was not part of the run (bench/run.sh --only) stays empty.
has(f) = system("test -s '".datadir."/".f."' && echo 1 || echo 0") eq "1"
# (an empty panel: a constant above its y range, and a label)
blank = 'set label 9 "not run" at graph 0.5, 0.5 center; plot [0:1][0:1] 2 notitle; unset label 9'

if (has("fanout.dat")) {
  set title "Fan-out: deliveries/s (1 publisher -> N subscribers)"
  set format y "%.1s%c"
  plot datadir."/fanout.dat" using 2:xtic(1) linecolor rgb "#3465a4", \
       '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8 notitle
  set title "Fan-out: delivery latency (ms)"
  set format y "%g"
  set key top left
  plot datadir."/fanout.dat" using 3:xtic(1) title "p50" linecolor rgb "#73d216", \
       '' using 4 title "p99" linecolor rgb "#f57900"
  set key off
} else {
  set title "Fan-out (not run)"
  @blank
  @blank
}

if (has("idle.dat")) {
  set title "Idle: server RSS per authenticated connection (bytes)"
  plot datadir."/idle.dat" using 2:xtic(1) linecolor rgb "#75507b", \
       '' using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.8 notitle
} else {
  set title "Idle (not run)"
  @blank
}

if (has("targets.dat")) {
  set title "switchboard against its targets (% of target; 100 = met, higher is better)"
  set xtics font ",9"
  set bmargin 5
  set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dashtype 2 linecolor rgb "#cc0000"
  plot datadir."/targets.dat" using 2:xtic(1) linecolor rgb "#3465a4", \
       '' using 0:2:(sprintf("%.0f%%", $2)) with labels offset 0,0.8 notitle
  unset arrow 1
} else {
  set title "Targets (not run)"
  @blank
}

unset multiplot
