package kafkacluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// PomPath finds tools/kafka/pom.xml: $IOV_KAFKA_POM, or the first ancestor of the working
// directory that holds it (tests run in their package directory inside the repository).
func PomPath() (string, error) {
	if p := os.Getenv("IOV_KAFKA_POM"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find pom: %w", err)
	}
	for {
		p := filepath.Join(dir, "tools", "kafka", "pom.xml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find pom: no tools/kafka/pom.xml above the working directory (set IOV_KAFKA_POM)")
		}
		dir = parent
	}
}

// CacheDir is where the Maven repository and resolved class paths live:
// $IOV_KAFKA_CACHE, else the user cache directory's iov-kafka (~/.cache/iov-kafka).
func CacheDir() (string, error) {
	if d := os.Getenv("IOV_KAFKA_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(d, "iov-kafka"), nil
}

// Classpath returns the broker's Java class path, resolving the pom's dependencies with Maven
// into CacheDir the first time (and again whenever the pom changes). Concurrent callers, in
// this or other processes, wait for one resolution.
func Classpath(ctx context.Context) (string, error) {
	pom, err := PomPath()
	if err != nil {
		return "", err
	}
	pomBytes, err := os.ReadFile(pom)
	if err != nil {
		return "", fmt.Errorf("read pom: %w", err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	sum := sha256.Sum256(pomBytes)
	cpFile := filepath.Join(cache, "classpath-"+hex.EncodeToString(sum[:8])+".txt")

	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("cache lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("cache lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway

	if cp, ok := readClasspath(cpFile); ok {
		return cp, nil
	}
	tmp := cpFile + ".tmp"
	cmd := exec.CommandContext(ctx, "mvn", "-B", "-q", "-f", pom,
		"-Dmaven.repo.local="+filepath.Join(cache, "m2"),
		"dependency:build-classpath", "-Dmdep.outputFile="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mvn resolve %s: %w\n%s", pom, err, out)
	}
	if err := os.Rename(tmp, cpFile); err != nil {
		return "", fmt.Errorf("classpath: %w", err)
	}
	cp, ok := readClasspath(cpFile)
	if !ok {
		return "", fmt.Errorf("classpath %s: empty or names missing jars", cpFile)
	}
	return cp, nil
}

// readClasspath returns the cached class path if every jar it names is still there.
func readClasspath(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	cp := strings.TrimSpace(string(b))
	if cp == "" {
		return "", false
	}
	for _, jar := range strings.Split(cp, string(os.PathListSeparator)) {
		if _, err := os.Stat(jar); err != nil {
			return "", false
		}
	}
	return cp, true
}

// Java returns the java binary: $IOV_KAFKA_JAVA, else OpenJDK 17 where Debian installs it,
// else $JAVA_HOME/bin/java, else java on the PATH.
func Java() string {
	if j := os.Getenv("IOV_KAFKA_JAVA"); j != "" {
		return j
	}
	for _, j := range []string{"/usr/lib/jvm/java-17-openjdk-amd64/bin/java", filepath.Join(os.Getenv("JAVA_HOME"), "bin", "java")} {
		if st, err := os.Stat(j); err == nil && !st.IsDir() {
			return j
		}
	}
	return "java"
}
