package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// monitor is a connection to QEMU's monitor socket (QMP) with typed
// commands. QMP is line-delimited JSON: QEMU greets with {"QMP": ...}, the
// client sends {"execute": "qmp_capabilities"}, then each command
// {"execute": NAME, "arguments": {...}} gets one reply, {"return": ...} or
// {"error": {"class": ..., "desc": ...}}, possibly after asynchronous
// {"event": ...} lines, which the monitor skips. Every exchange has a
// deadline: a QEMU that stops answering fails the command, it never blocks
// the caller.
type monitor struct {
	c       net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// QMPError is a command QEMU refused, with QEMU's own words.
type QMPError struct {
	Command, Class, Desc string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("QMP %s: %s (%s)", e.Command, e.Desc, e.Class)
}

// maxQMPLine bounds one QMP line (replies here are small; query-migrate is
// the largest, about 1 KiB).
const maxQMPLine = 1 << 20

// dialMonitor connects to the QMP socket at path and negotiates
// capabilities. QEMU creates the socket as it starts, so a missing or
// refusing socket is tried again until wait has passed; timeout bounds
// each exchange after that.
func dialMonitor(path string, wait, timeout time.Duration) (*monitor, error) {
	deadline := time.Now().Add(wait)
	var c net.Conn
	for {
		var err error
		c, err = net.DialTimeout("unix", path, timeout)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return nil, fmt.Errorf("QMP socket: %w", err)
		}
		time.Sleep(time.Millisecond)
	}
	m := &monitor{c: c, r: newReader(c), timeout: timeout}
	var greeting struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	if err := m.readLine(&greeting); err != nil || greeting.QMP == nil {
		c.Close()
		return nil, fmt.Errorf("QMP greeting: %v", err)
	}
	if err := m.execute("qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

func (m *monitor) close() error { return m.c.Close() }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 4096) }

// readLine reads one line into v.
func (m *monitor) readLine(v any) error {
	if err := m.c.SetReadDeadline(time.Now().Add(m.timeout)); err != nil {
		return err
	}
	var line []byte
	for {
		part, isPrefix, err := m.r.ReadLine()
		if err != nil {
			return err
		}
		line = append(line, part...)
		if len(line) > maxQMPLine {
			return fmt.Errorf("a QMP line longer than %d bytes", maxQMPLine)
		}
		if !isPrefix {
			break
		}
	}
	return json.Unmarshal(line, v)
}

// execute runs one command with args (nil for none) and decodes its
// return value into reply (nil to ignore it).
func (m *monitor) execute(command string, args, reply any) error {
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}{command, args}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if err := m.c.SetWriteDeadline(time.Now().Add(m.timeout)); err != nil {
		return err
	}
	if _, err := m.c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		var r struct {
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := m.readLine(&r); err != nil {
			return fmt.Errorf("QMP %s: %w", command, err)
		}
		switch {
		case r.Event != "":
			continue
		case r.Error != nil:
			return &QMPError{Command: command, Class: r.Error.Class, Desc: r.Error.Desc}
		case r.Return == nil:
			return fmt.Errorf("QMP %s: a reply without return or error", command)
		case reply != nil:
			if err := json.Unmarshal(r.Return, reply); err != nil {
				return fmt.Errorf("QMP %s: reply: %w", command, err)
			}
		}
		return nil
	}
}

// quit ends QEMU.
func (m *monitor) quit() error { return m.execute("quit", nil, nil) }

// setCapability turns one migration capability on or off.
func (m *monitor) setCapability(name string, on bool) error {
	type capability struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	return m.execute("migrate-set-capabilities", struct {
		Capabilities []capability `json:"capabilities"`
	}{[]capability{{name, on}}}, nil)
}

// migrate starts saving the VM to uri.
func (m *monitor) migrate(uri string) error {
	return m.execute("migrate", struct {
		URI string `json:"uri"`
	}{uri}, nil)
}

// migrateIncoming starts restoring the VM from uri (QEMU started with
// -incoming defer).
func (m *monitor) migrateIncoming(uri string) error {
	return m.execute("migrate-incoming", struct {
		URI string `json:"uri"`
	}{uri}, nil)
}

// migrationInfo is the part of query-migrate's reply ccos reads.
type migrationInfo struct {
	// Status is QEMU's MigrationStatus: "none", "setup", "active",
	// "completed", "failed", "cancelled", ...; empty before any migration.
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
	RAM       *struct {
		Transferred int64 `json:"transferred"`
	} `json:"ram"`
}

func (m *monitor) queryMigrate() (migrationInfo, error) {
	var info migrationInfo
	err := m.execute("query-migrate", nil, &info)
	return info, err
}

// queryStatus returns the VM's run state ("running", "paused",
// "inmigrate", "postmigrate", ...).
func (m *monitor) queryStatus() (string, error) {
	var st struct {
		Status string `json:"status"`
	}
	err := m.execute("query-status", nil, &st)
	return st.Status, err
}

// hmp runs a human monitor command and returns its text.
func (m *monitor) hmp(command string) (string, error) {
	var out string
	err := m.execute("human-monitor-command", struct {
		CommandLine string `json:"command-line"`
	}{command}, &out)
	return out, err
}
