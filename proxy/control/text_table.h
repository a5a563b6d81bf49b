// Plain-text tables for the commands' human output (ca audit, ca readiness): columns aligned
// by terminal width, with East Asian wide characters counted as two columns.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace mintgate::proxy {

// "-" for an empty cell.
inline std::string Cell(const std::string& s) { return s.empty() ? "-" : s; }

// Terminal columns of UTF-8 text: East Asian wide characters (the 発行先/発行元 headings,
// Japanese CA names) take two.
std::size_t DisplayWidth(const std::string& s);

// Rows of cells, each column as wide as its widest cell plus two spaces, every line
// prefixed with `indent`.
void PrintTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                const std::string& indent = "");

}  // namespace mintgate::proxy
