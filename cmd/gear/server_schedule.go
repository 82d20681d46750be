package main

import (
	"fmt"
	"strings"

	"github.com/gearhq/gear/core"
	"github.com/gearhq/gear/protocol"
)

// scheduleFlag is --schedule, repeatable: each value is what follows `schedule add` in the admin
// protocol, read by the same parser and checked as the server will check it.
type scheduleFlag struct {
	defs []protocol.ScheduleInfo
}

func (f *scheduleFlag) String() string {
	names := make([]string, len(f.defs))
	for i, d := range f.defs {
		names[i] = d.Name
	}
	return strings.Join(names, ",")
}

func (f *scheduleFlag) Set(v string) error {
	def, err := protocol.ParseScheduleAdd(v)
	if err == nil {
		err = core.ValidateSchedule(def)
	}
	if err != nil {
		return err
	}
	for _, d := range f.defs {
		if d.Name == def.Name {
			return fmt.Errorf("schedule %s given twice", def.Name)
		}
	}
	f.defs = append(f.defs, def)
	return nil
}
