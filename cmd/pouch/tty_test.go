package main

import "syscall"

// ttyProcAttr makes the child a session leader with the pty as its controlling terminal.
func ttyProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true, Setctty: true} }
