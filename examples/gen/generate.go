package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/unseen-data/unseen/compute/idnum"
)

const (
	defaultRows = 5000
	defaultSeed = 2026
	minRows     = 100
	maxRows     = 1_000_000
)

// The data are as of this date: ages and benefit start months are relative
// to it, so output does not depend on when the generator runs.
var asOf = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// Overlap rates among benefit recipients. They are high enough that every
// district has several dozen rows in each two-way overlap, above any
// sensible minimum group size, while the three-way overlaps are small
// enough per district to show small-group suppression.
const (
	pProperty = 0.15 // also own property
	pAllow    = 0.11 // also receive 低保: the overlap an eligibility audit looks for
	pBusiness = 0.11 // also own a business
)

// The files, by path under the output directory.
const (
	fileBenefits = "hrss/unemployment_benefits.csv"
	fileProperty = "housing/property_owners.csv"
	fileAllow    = "civil/minimum_living_allowance.csv"
	fileBusiness = "market/business_owners.csv"
)

// Deliberately invalid ID numbers (bad check digits) per file.
var invalidPerFile = map[string]int{fileBenefits: 7, fileProperty: 3}

type district struct {
	code, name string
	pop        int     // resident population, 10k (approximate)
	price      [2]int  // assessed value of a home, 10k yuan
	weight     float64 // share of rows
}

var districts = []district{
	{"440103", "荔湾区", 112, [2]int{250, 700}, 0},
	{"440104", "越秀区", 103, [2]int{400, 1200}, 0},
	{"440105", "海珠区", 181, [2]int{300, 900}, 0},
	{"440106", "天河区", 224, [2]int{500, 1500}, 0},
	{"440111", "白云区", 375, [2]int{200, 600}, 0},
	{"440112", "黄埔区", 127, [2]int{250, 700}, 0},
	{"440113", "番禺区", 284, [2]int{200, 600}, 0},
	{"440114", "花都区", 170, [2]int{100, 300}, 0},
	{"440115", "南沙区", 92, [2]int{150, 400}, 0},
	{"440117", "从化区", 73, [2]int{80, 200}, 0},
	{"440118", "增城区", 150, [2]int{100, 300}, 0},
}

func init() {
	// Half even, half by population: realistic, yet no district so small
	// that its overlaps are too few to query.
	total := 0
	for _, d := range districts {
		total += d.pop
	}
	for i := range districts {
		districts[i].weight = 0.5/float64(len(districts)) + 0.5*float64(districts[i].pop)/float64(total)
	}
}

var (
	// Common surnames in Guangzhou, repeated to weight them.
	surnames = []string{"陈", "陈", "陈", "李", "李", "黄", "黄", "张", "张", "梁", "梁", "林", "刘", "吴",
		"罗", "杨", "何", "郭", "郑", "谢", "冯", "邓", "曾", "蔡", "钟", "潘", "卢", "许", "朱", "胡",
		"叶", "彭", "苏", "余", "温", "莫", "区", "麦", "邝", "欧阳", "司徒"}
	maleChars = []rune("伟强俊杰志明浩文辉建国华永德荣锦嘉家子宇振宏健斌峰达勇军涛昊铭轩泽晖骏耀")
	femChars  = []rune("芳丽敏静燕玲娟霞婷颖欣怡嘉慧琳雪梅莹洁倩妍诗思晓雅美凤秀桂咏淑佩绮婉宝")

	businessTypes = []string{"餐饮", "零售", "批发", "制造", "物流", "信息技术", "美容美发", "教育培训", "建筑装修", "电子商务"}
)

type person struct {
	id       string
	name     string
	district int
}

// gen holds the generator's state. It draws only from a PCG's Uint64, whose
// sequence is fixed by its specification, so output does not change with
// the Go release.
type gen struct {
	rng  *rand.PCG
	used map[string]bool
}

func (g *gen) intn(n int) int { return int(g.rng.Uint64() % uint64(n)) }

func (g *gen) between(lo, hi int) int { return lo + g.intn(hi-lo+1) }

// chance is true with probability p.
func (g *gen) chance(p float64) bool { return float64(g.rng.Uint64()>>11)/(1<<53) < p }

func (g *gen) district() int {
	x := float64(g.rng.Uint64()>>11) / (1 << 53)
	for i, d := range districts {
		if x < d.weight {
			return i
		}
		x -= d.weight
	}
	return len(districts) - 1
}

func (g *gen) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, g.intn(i+1))
	}
}

// newPerson invents a resident of district d aged between minAge and
// maxAge. Most hold an ID issued in the district they live in; some moved
// within the city since.
func (g *gen) newPerson(d, minAge, maxAge int) person {
	region := districts[d].code
	if g.chance(0.15) {
		region = districts[g.intn(len(districts))].code
	}
	male := g.chance(0.5)
	for {
		age := g.between(minAge, maxAge)
		birth := asOf.AddDate(-age-1, 0, 1+g.intn(365))
		seq := 2 * g.intn(500) // even for women
		if male {
			seq++
		}
		id, err := idnum.Make(region, birth, seq)
		if err != nil {
			panic(err) // the inputs above are always in range
		}
		if !g.used[id] {
			g.used[id] = true
			return person{id: id, name: g.name(male), district: d}
		}
	}
}

func (g *gen) name(male bool) string {
	chars := femChars
	if male {
		chars = maleChars
	}
	var b strings.Builder
	b.WriteString(surnames[g.intn(len(surnames))])
	n := 2
	if g.chance(0.25) {
		n = 1
	}
	for range n {
		b.WriteRune(chars[g.intn(len(chars))])
	}
	return b.String()
}

// invalidID is a fresh ID with a wrong check digit.
func (g *gen) invalidID() string {
	p := g.newPerson(g.district(), 18, 60)
	const checks = "0123456789X"
	i := strings.IndexByte(checks, p.id[17])
	return p.id[:17] + string(checks[(i+1+g.intn(10))%11])
}

// nearby is d most of the time, otherwise another district: people own
// homes and businesses outside the district they live in.
func (g *gen) nearby(d int) int {
	if g.chance(0.8) {
		return d
	}
	return g.intn(len(districts))
}

type output struct {
	files   map[string][]byte
	rows    map[string]int
	invalid map[string][]string // deliberately invalid IDs, per file
	// Distinct valid IDs in each file, and of benefit recipients in each
	// overlap, per district of the benefit record.
	ids      map[string][]string
	overlaps map[string][]int
}

func generate(rows int, seed uint64) (*output, error) {
	if rows < minRows || rows > maxRows {
		return nil, fmt.Errorf("rows must be between %d and %d", minRows, maxRows)
	}
	g := &gen{rng: rand.NewPCG(seed, 0x756e7365656e), used: map[string]bool{}}

	recipients := make([]person, rows)
	for i := range recipients {
		recipients[i] = g.newPerson(g.district(), 18, 59)
	}
	var withProperty, withAllow, withBusiness []person
	for _, p := range recipients {
		if g.chance(pProperty) {
			withProperty = append(withProperty, p)
		}
		if g.chance(pAllow) {
			withAllow = append(withAllow, p)
		}
		if g.chance(pBusiness) {
			withBusiness = append(withBusiness, p)
		}
	}

	// Other people in the other datasets, with the overlaps one would
	// expect among them: many business owners own property, a few 低保
	// households do too.
	fresh := func(n, minAge, maxAge int) []person {
		ps := make([]person, max(n, 0))
		for i := range ps {
			ps[i] = g.newPerson(g.district(), minAge, maxAge)
		}
		return ps
	}
	business := append(withBusiness, fresh(rows-len(withBusiness), 22, 65)...)
	allow := append(withAllow, fresh(rows/2-len(withAllow), 18, 85)...)
	property := withProperty
	for _, p := range business[len(withBusiness):] {
		if g.chance(0.3) {
			property = append(property, p)
		}
	}
	for _, p := range allow[len(withAllow):] {
		if g.chance(0.03) {
			property = append(property, p)
		}
	}
	property = append(property, fresh(rows*3/2-len(property), 25, 85)...)

	out := &output{files: map[string][]byte{}, rows: map[string]int{}, invalid: map[string][]string{}, ids: map[string][]string{}}
	emit := func(file string, header []string, ps []person, row func(p person) [][]string) {
		var recs [][]string
		for _, p := range ps {
			recs = append(recs, row(p)...)
			out.ids[file] = append(out.ids[file], p.id)
		}
		for range invalidPerFile[file] {
			p := g.newPerson(g.district(), 25, 60)
			p.id = g.invalidID()
			out.invalid[file] = append(out.invalid[file], p.id)
			recs = append(recs, row(p)...)
		}
		g.shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		_ = w.Write(header)
		_ = w.WriteAll(recs) // writing to a bytes.Buffer cannot fail
		out.files[file] = b.Bytes()
		out.rows[file] = len(recs)
	}
	fen := func(yuan int) string { return strconv.Itoa(yuan * 100) }

	emit(fileBenefits, []string{"id_number", "name", "district", "monthly_benefit_fen", "start_month"}, recipients,
		func(p person) [][]string {
			// Guangzhou pays 90% of the minimum wage, less for short
			// contribution records; in whole yuan.
			start := asOf.AddDate(0, -1-g.intn(34), 0)
			return [][]string{{p.id, p.name, districts[p.district].name, fen(g.between(1500, 2250)), start.Format("2006-01")}}
		})
	emit(fileProperty, []string{"id_number", "district", "property_count", "assessed_value_fen"}, property,
		func(p person) [][]string {
			d := g.nearby(p.district)
			n := 1
			switch x := g.intn(100); {
			case x >= 97:
				n = g.between(4, 5)
			case x >= 90:
				n = 3
			case x >= 70:
				n = 2
			}
			value := 0
			for range n {
				value += g.between(districts[d].price[0], districts[d].price[1]) * 10000
			}
			return [][]string{{p.id, districts[d].name, strconv.Itoa(n), fen(value)}}
		})
	emit(fileAllow, []string{"id_number", "district", "household_size", "monthly_allowance_fen"}, allow,
		func(p person) [][]string {
			size := 1 + min(g.intn(5), g.intn(5)) // smaller households are commoner
			// 低保 tops income up to 1245 yuan a person a month.
			gap := g.between(400, 1245)
			return [][]string{{p.id, districts[p.district].name, strconv.Itoa(size), fen(size * gap)}}
		})
	emit(fileBusiness, []string{"id_number", "district", "business_type", "registered_capital_fen"}, business,
		func(p person) [][]string {
			n := 1
			if g.chance(0.04) {
				n = 2 // some own two businesses: keys repeat
			}
			var recs [][]string
			for range n {
				// Roughly log-uniform from 10 thousand to 5 million yuan,
				// in thousands.
				capital := (10 << g.intn(9)) * g.between(10, 20) / 10
				recs = append(recs, []string{p.id, districts[g.nearby(p.district)].name,
					businessTypes[g.intn(len(businessTypes))], fen(capital * 1000)})
			}
			return recs
		})

	// Overlaps of the benefit recipients with each dataset, per district
	// of the benefit record.
	inAllow := ids(withAllow)
	var both []person
	for _, p := range withProperty {
		if inAllow[p.id] {
			both = append(both, p)
		}
	}
	out.overlaps = map[string][]int{}
	for name, group := range map[string][]person{fileProperty: withProperty, fileAllow: withAllow, fileBusiness: withBusiness, overlapBoth: both} {
		counts := make([]int, len(districts))
		for _, p := range group {
			counts[p.district]++
		}
		out.overlaps[name] = counts
	}
	return out, nil
}

// overlapBoth names the recipients who are in both the property and the 低保
// datasets.
const overlapBoth = "property+allowance"

func ids(ps []person) map[string]bool {
	m := make(map[string]bool, len(ps))
	for _, p := range ps {
		m[p.id] = true
	}
	return m
}

func (o *output) summary() string {
	var b strings.Builder
	b.WriteString("\nbenefit recipients also in the other datasets, by district:\n")
	b.WriteString("district   property   低保  business  property+低保\n")
	total := make([]int, 4)
	for i, d := range districts {
		fmt.Fprintf(&b, "%s  ", d.name)
		for j, f := range []string{fileProperty, fileAllow, fileBusiness, overlapBoth} {
			n := o.overlaps[f][i]
			total[j] += n
			fmt.Fprintf(&b, "%9d", n)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "total   %9d%9d%9d%9d\n", total[0], total[1], total[2], total[3])
	return b.String()
}
