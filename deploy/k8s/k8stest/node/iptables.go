package node

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// iptablesLine is a chain or a rule of one table, as iptables-save prints it (counters left out).
type iptablesLine struct {
	family string // iptables or ip6tables
	table  string
	chain  string // the chain declared, or the chain a rule is appended to
	rule   string // "" for a chain declaration; else the rule without "-A CHAIN "
}

func (l iptablesLine) String() string {
	if l.rule == "" {
		return fmt.Sprintf("%s -t %s chain %s", l.family, l.table, l.chain)
	}
	return fmt.Sprintf("%s -t %s -A %s %s", l.family, l.table, l.chain, l.rule)
}

// iptablesSave reads the chains and rules of every table, IPv4 and IPv6. A missing iptables
// reads as empty: then nothing could have added a rule either.
func iptablesSave() []iptablesLine {
	var out []iptablesLine
	for _, family := range []string{"iptables", "ip6tables"} {
		text, err := exec.Command(family + "-save").Output()
		if err != nil {
			continue
		}
		table := ""
		for _, line := range strings.Split(string(text), "\n") {
			switch {
			case strings.HasPrefix(line, "*"):
				table = line[1:]
			case strings.HasPrefix(line, ":"):
				name, _, _ := strings.Cut(line[1:], " ")
				out = append(out, iptablesLine{family: family, table: table, chain: name})
			case strings.HasPrefix(line, "-A "):
				chain, rule, _ := strings.Cut(line[3:], " ")
				out = append(out, iptablesLine{family: family, table: table, chain: chain, rule: rule})
			}
		}
	}
	return out
}

// addedIptables lists the chains and rules that appeared since Start and are the node's: the
// kubelet's KUBE- chains (its canaries and hint), CNI- chains, and rules naming them, the pod
// subnet or the bridge. Rules another program added meanwhile are not the node's to remove.
func (n *Node) addedIptables() []iptablesLine {
	var out []iptablesLine
	for _, l := range iptablesSave() {
		if !n.before.iptables[l] && n.ownsIptables(l) {
			out = append(out, l)
		}
	}
	return out
}

func (n *Node) ownsIptables(l iptablesLine) bool {
	ours := func(s string) bool { return strings.HasPrefix(s, "KUBE-") || strings.HasPrefix(s, "CNI-") }
	if ours(l.chain) {
		return true
	}
	for _, f := range strings.Fields(l.rule) {
		if ours(f) || f == n.Subnets.Pods.String() || f == n.Subnets.Bridge {
			return true
		}
	}
	return false
}

// removeIptables deletes the node's rules, then flushes and deletes its chains.
func (n *Node) removeIptables() error {
	added := n.addedIptables()
	var errs []error
	run := func(family string, args ...string) {
		if out, err := exec.Command(family, args...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %v: %s", family, strings.Join(args, " "), err, out))
		}
	}
	for _, l := range added {
		if l.rule != "" {
			args, err := splitRule(l.rule)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l, err))
				continue
			}
			run(l.family, append([]string{"-w", "-t", l.table, "-D", l.chain}, args...)...)
		}
	}
	for _, l := range added {
		if l.rule == "" {
			run(l.family, "-w", "-t", l.table, "-F", l.chain)
		}
	}
	for _, l := range added {
		if l.rule == "" {
			run(l.family, "-w", "-t", l.table, "-X", l.chain)
		}
	}
	return errors.Join(errs...)
}

// splitRule splits a rule as iptables-save quotes it: words, and double-quoted strings with
// backslash escapes (comments).
func splitRule(rule string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		switch {
		case quoted && c == '\\' && i+1 < len(rule):
			i++
			cur.WriteByte(rule[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", rule)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}
