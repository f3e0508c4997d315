// Package logs keeps a container's stdout and stderr in files that rotate by size, and reads
// them back: all of it, the last N lines, or following the file as the container writes.
//
// The writer runs in the logging process containerd's shim starts beside each task (see
// [RunLogger]); the readers run in pouch. A file is a sequence of records, each the bytes one
// stream wrote up to and including a newline (or a partial line), with the stream and the time:
//
//	2024-05-01T10:00:00.123456789Z stdout 6\n
//	hello\n
//	\n
//
// The header line gives the byte count, so the data are kept exactly as written (binary output
// included); the trailing newline keeps the file readable with less(1). The package knows
// nothing of containerd beyond the logging protocol of its shim.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stream names which of the container's outputs a record came from.
type Stream string

// The two streams.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Defaults for Config.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 3
)

// ErrCorrupt is returned for a log file that does not hold records.
var ErrCorrupt = errors.New("corrupt log file")

// Config says where a container's log lives and how large it may grow.
type Config struct {
	// Path is the current file; rotated ones are Path.1 (the newest) to Path.<MaxFiles-1>.
	Path string `json:"path"`
	// MaxSize is the size at which the current file is rotated; 0 means DefaultMaxSize.
	MaxSize int64 `json:"maxSize,omitempty"`
	// MaxFiles is how many files are kept, the current one included; 0 means DefaultMaxFiles.
	MaxFiles int `json:"maxFiles,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.MaxSize <= 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.MaxFiles <= 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	return c
}

// Files lists the log's files that exist, oldest first.
func (c Config) Files() []string {
	c = c.withDefaults()
	var out []string
	for i := c.MaxFiles - 1; i >= 1; i-- {
		p := c.Path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if _, err := os.Stat(c.Path); err == nil {
		out = append(out, c.Path)
	}
	return out
}

// Remove deletes every file of the log.
func (c Config) Remove() error {
	var errs []error
	for _, p := range c.Files() {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Writer appends records to a log, rotating it by size. It is safe for concurrent use; each
// record is written with one write(2), so a reader never sees records interleaved.
type Writer struct {
	cfg  Config
	mu   sync.Mutex
	f    *os.File
	size int64
	now  func() time.Time
}

// NewWriter opens (creating or appending to) the log's current file.
func NewWriter(cfg Config) (*Writer, error) {
	cfg = cfg.withDefaults()
	w := &Writer{cfg: cfg, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Write records p as written by stream s now, one record per line.
func (w *Writer) Write(s Stream, p []byte) error {
	t := w.now().UTC()
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line = p[:i+1]
		}
		p = p[len(line):]
		if err := w.record(s, t, line); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) record(s Stream, t time.Time, data []byte) error {
	var b bytes.Buffer
	b.Grow(len(data) + 48)
	b.WriteString(t.Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(string(s))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(data)))
	b.WriteByte('\n')
	b.Write(data)
	b.WriteByte('\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(b.Len()) > w.cfg.MaxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b.Bytes())
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return nil
}

// rotate shifts Path.i to Path.i+1 (dropping the oldest) and Path to Path.1, then starts a new
// current file.
func (w *Writer) rotate() error {
	w.f.Close()
	if w.cfg.MaxFiles <= 1 {
		if err := os.Remove(w.cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
		return w.open()
	}
	for i := w.cfg.MaxFiles - 1; i >= 1; i-- {
		from := w.cfg.Path
		if i > 1 {
			from += "." + strconv.Itoa(i-1)
		}
		if err := os.Rename(from, w.cfg.Path+"."+strconv.Itoa(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log: %w", err)
		}
	}
	return w.open()
}

// StreamWriter is an io.Writer that records everything written to it as stream s.
func (w *Writer) StreamWriter(s Stream) io.Writer { return streamWriter{w, s} }

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

type streamWriter struct {
	w *Writer
	s Stream
}

func (sw streamWriter) Write(p []byte) (int, error) {
	if err := sw.w.Write(sw.s, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Record is one chunk of output.
type Record struct {
	Time   time.Time
	Stream Stream
	Data   []byte
}

// parser turns bytes read from a log file into records, keeping an incomplete one for later.
type parser struct{ buf []byte }

// next returns the next complete record, or ok false when the buffer holds none yet.
func (p *parser) next() (rec Record, ok bool, err error) {
	nl := bytes.IndexByte(p.buf, '\n')
	if nl < 0 {
		if len(p.buf) > 128 {
			return Record{}, false, fmt.Errorf("%w: header of %d bytes without a newline", ErrCorrupt, len(p.buf))
		}
		return Record{}, false, nil
	}
	fields := strings.Fields(string(p.buf[:nl]))
	if len(fields) != 3 {
		return Record{}, false, fmt.Errorf("%w: header %q", ErrCorrupt, p.buf[:nl])
	}
	t, err := time.Parse(time.RFC3339Nano, fields[0])
	if err != nil {
		return Record{}, false, fmt.Errorf("%w: header %q", ErrCorrupt, p.buf[:nl])
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil || n < 0 || (fields[1] != string(Stdout) && fields[1] != string(Stderr)) {
		return Record{}, false, fmt.Errorf("%w: header %q", ErrCorrupt, p.buf[:nl])
	}
	end := nl + 1 + n + 1
	if len(p.buf) < end {
		return Record{}, false, nil
	}
	rec = Record{Time: t, Stream: Stream(fields[1]), Data: bytes.Clone(p.buf[nl+1 : nl+1+n])}
	p.buf = p.buf[end:]
	return rec, true, nil
}

// feed reads what r holds now and returns the complete records in it.
func (p *parser) feed(r io.Reader) ([]Record, error) {
	var chunk [32 << 10]byte
	var out []Record
	for {
		n, err := r.Read(chunk[:])
		p.buf = append(p.buf, chunk[:n]...)
		for {
			rec, ok, perr := p.next()
			if perr != nil {
				return out, perr
			}
			if !ok {
				break
			}
			out = append(out, rec)
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
