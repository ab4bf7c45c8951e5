package task

import (
	"slices"
	"strings"
)

// Model is the model a client asks for, in the API's spelling ("V5").
type Model string

// modelInfo is what tunehook knows about a model: the legacy "chirp" name
// that results carry, and the field limits of the reference.
type modelInfo struct {
	chirp     string // unconfirmed names are marked; correct them here only
	promptMax int    // custom mode with vocals: the lyrics
	styleMax  int
	titleMax  int
}

// models is the one table of models. Observed chirp names: V3_5, V4, V5
// (reference); V4_5, V4_5PLUS, V4_5ALL and V5_5 follow providers' public
// model lists and are not confirmed by the reference.
var models = map[Model]modelInfo{
	"V3_5":     {chirp: "chirp-v3-5", promptMax: 3000, styleMax: 200, titleMax: 80},
	"V4":       {chirp: "chirp-v4", promptMax: 3000, styleMax: 200, titleMax: 80},
	"V4_5":     {chirp: "chirp-auk", promptMax: 5000, styleMax: 1000, titleMax: 100},
	"V4_5PLUS": {chirp: "chirp-bluejay", promptMax: 5000, styleMax: 1000, titleMax: 100},
	"V4_5ALL":  {chirp: "chirp-auk-turbo", promptMax: 5000, styleMax: 1000, titleMax: 80},
	"V5":       {chirp: "chirp-crow", promptMax: 5000, styleMax: 1000, titleMax: 100},
	"V5_5":     {chirp: "chirp-fenix", promptMax: 5000, styleMax: 1000, titleMax: 100},
}

// Known reports whether m is a model tunehook serves.
func (m Model) Known() bool {
	_, ok := models[m]
	return ok
}

// Chirp returns the legacy name results carry as model_name and record-info
// as type ("chirp-crow" for V5).
func (m Model) Chirp() string { return models[m].chirp }

// modelList is the models clients are told about in errors; V3_5 is accepted
// for old clients but no longer advertised.
func modelList() string {
	var names []string
	for m := range models {
		if m != "V3_5" {
			names = append(names, string(m))
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
