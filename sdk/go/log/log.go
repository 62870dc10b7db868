// Package log writes log lines that the host attributes to the projection
// and its version. Off wasm (go test) they go to stderr.
//
// Output written to os.Stdout and os.Stderr (fmt.Println) reaches the host's
// log too, without a level.
package log

import (
	"fmt"

	"projector.dev/sdk/internal/host"
)

// Level is a log line's severity.
type Level int32

const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes message at level.
func Log(level Level, message string) { host.Log(int32(level), message) }

func Trace(message string) { Log(LevelTrace, message) }
func Debug(message string) { Log(LevelDebug, message) }
func Info(message string)  { Log(LevelInfo, message) }
func Warn(message string)  { Log(LevelWarn, message) }
func Error(message string) { Log(LevelError, message) }

func Tracef(format string, args ...any) { Log(LevelTrace, fmt.Sprintf(format, args...)) }
func Debugf(format string, args ...any) { Log(LevelDebug, fmt.Sprintf(format, args...)) }
func Infof(format string, args ...any)  { Log(LevelInfo, fmt.Sprintf(format, args...)) }
func Warnf(format string, args ...any)  { Log(LevelWarn, fmt.Sprintf(format, args...)) }
func Errorf(format string, args ...any) { Log(LevelError, fmt.Sprintf(format, args...)) }
