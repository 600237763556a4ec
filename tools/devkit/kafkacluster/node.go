package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Node is one combined broker+controller process.
type Node struct {
	ID             int32
	Port           int // PLAINTEXT listener (clients, inter-broker)
	ControllerPort int // CONTROLLER listener (KRaft quorum)
	SecurePort     int // SASL_SSL listener (0 without Options.Secure)

	cluster *Cluster
	dir     string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	up      bool          // launched and not deliberately stopped or killed
}

// Addr is the node's PLAINTEXT host:port.
func (n *Node) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.Port) }

// Dir is the node's directory (config, data, logs/server.log).
func (n *Node) Dir() string { return n.dir }

// PID is the running process id (0 when stopped).
func (n *Node) PID() int {
	if !n.Running() {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *Node) configPath() string { return filepath.Join(n.dir, "server.properties") }

// Running reports whether the process is alive (a SIGSTOPped node is alive).
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *Node) format(ctx context.Context) error {
	args := []string{"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dlog4j2.configurationFile=" + filepath.Join(n.dir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + filepath.Join(n.dir, "logs"),
		"-cp", n.cluster.classpath, "kafka.tools.StorageTool",
		"format", "--cluster-id", n.cluster.clusterID, "--config", n.configPath()}
	if s := n.cluster.opts.Secure; s != nil {
		for user, pass := range s.Users {
			args = append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", user, pass))
		}
	}
	out, err := exec.CommandContext(ctx, Java(), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format node %d: %w\n%s", n.ID, err, out)
	}
	return nil
}

func (n *Node) launch() error {
	logDir := filepath.Join(n.dir, "logs")
	out, err := os.OpenFile(filepath.Join(logDir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", n.ID, err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(Java(),
		"-Xmx"+n.cluster.opts.Heap, "-Xms64m", "-Xss512k",
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+filepath.Join(n.dir, "log4j2.properties"),
		"-Dkafka.logs.dir="+logDir,
		"-cp", n.cluster.classpath, "kafka.Kafka", n.configPath())
	cmd.Stdout, cmd.Stderr = out, out
	if n.cluster.opts.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		// A test that dies must not leave brokers behind.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", n.ID, err)
	}
	n.cmd = cmd
	n.up = true
	done := make(chan struct{})
	n.done = done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if err := os.WriteFile(filepath.Join(n.dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return fmt.Errorf("node %d pid file: %w", n.ID, err)
	}
	return nil
}

func (n *Node) signal(sig syscall.Signal) error {
	if !n.Running() {
		return fmt.Errorf("node %d is not running", n.ID)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("node %d %v: %w", n.ID, sig, err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to end.
func (n *Node) Kill() error {
	n.up = false
	if err := n.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-n.done
	return nil
}

// Pause freezes the node with SIGSTOP: its sockets stay open but nothing answers.
func (n *Node) Pause() error { return n.signal(syscall.SIGSTOP) }

// Resume continues a paused node with SIGCONT.
func (n *Node) Resume() error { return n.signal(syscall.SIGCONT) }

// stopGrace bounds a clean shutdown before SIGKILL.
const stopGrace = 60 * time.Second

func (n *Node) signalStop() {
	n.up = false
	if n.Running() {
		_ = n.cmd.Process.Signal(syscall.SIGCONT) // a paused JVM cannot handle SIGTERM
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
	}
}

// Stop shuts the node down cleanly (SIGTERM; SIGKILL after 60s) and waits for it.
func (n *Node) Stop() error {
	if !n.Running() {
		return nil
	}
	n.signalStop()
	select {
	case <-n.done:
		return nil
	case <-time.After(stopGrace):
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
		return fmt.Errorf("node %d ignored SIGTERM for %s; killed", n.ID, stopGrace)
	}
}

// Start launches a stopped or killed node again (same id, ports and data) and waits until it
// is registered and unfenced.
func (n *Node) Start(ctx context.Context) error {
	if n.Running() {
		return errors.New("node already running")
	}
	if err := n.launch(); err != nil {
		return err
	}
	return n.cluster.WaitReady(ctx)
}
