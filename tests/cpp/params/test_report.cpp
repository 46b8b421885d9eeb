// The params CSV tables: their columns are fields of the records' lists (params/report.cpp), and the header
// stays the one the CLI has always written.
#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <metaprobe/common/fields.hpp>
#include <metaprobe/params/compare.hpp>
#include <metaprobe/params/report.hpp>

#include <catch2/catch.hpp>

using namespace metaprobe;
using namespace metaprobe::params;

namespace {

std::vector<std::string> header_of(const std::string& csv) {
  std::vector<std::string> columns;
  std::istringstream line(csv.substr(0, csv.find('\n')));
  for (std::string c; std::getline(line, c, ',');) columns.push_back(c);
  return columns;
}

// prefix + every key of T's list.
template <class T>
void add_names(std::set<std::string>& names, const std::string& prefix) {
  for (const auto& k : record_field_names<T>()) names.insert(prefix + k);
}

}  // namespace

TEST_CASE("params CSV columns come from the records' field lists", "[params][report][csv]") {
  SECTION("every comparison column is a field key of a record of the row, under its block's prefix") {
    std::set<std::string> names;
    add_names<TensorComparison>(names, "");
    add_names<ParsedName>(names, "");
    add_names<UpdateStats>(names, "");
    add_names<TensorStats>(names, "ref_");
    add_names<TensorStats>(names, "tuned_");
    add_names<SpectralStats>(names, "ref_");
    add_names<SpectralStats>(names, "tuned_");
    add_names<UpdateSpectralStats>(names, "");
    add_names<UpdateSpectralStats>(names, "update_");
    const auto columns = header_of(comparison_csv(CompareResult{}));
    REQUIRE(columns.size() == 34);
    for (const auto& c : columns) {
      INFO(c);
      CHECK(names.count(c) == 1);
    }
  }
  SECTION("every description column is a field key of the row, its name or its stats or spectra") {
    std::set<std::string> names;
    add_names<TensorDescription>(names, "");
    add_names<ParsedName>(names, "");
    add_names<TensorStats>(names, "");
    add_names<SpectralStats>(names, "");
    const auto columns = header_of(description_csv({}));
    REQUIRE(columns.size() == 22);
    for (const auto& c : columns) {
      INFO(c);
      CHECK(names.count(c) == 1);
    }
  }
  SECTION("the headers are the ones the CLI has always written (byte for byte)") {
    CHECK(comparison_csv(CompareResult{}) ==
          "name,layer,kind,shape,reference_dtype,tuned_dtype,numel,ref_mean,ref_std,ref_skewness,"
          "ref_excess_kurtosis,tuned_mean,tuned_std,tuned_skewness,tuned_excess_kurtosis,delta_fro,ref_fro,"
          "rel_update_norm,cosine,max_abs_delta,sparsity_abs,sparsity_rel,unchanged_fraction,sign_flip_fraction,"
          "nonfinite_count,spectral_status,ref_alpha,tuned_alpha,ref_stable_rank,tuned_stable_rank,"
          "update_normalized_rank,update_topk_energy_fraction,spectral_drift,left_angle_max_deg\n");
    CHECK(description_csv({}) ==
          "name,layer,kind,shape,dtype,numel,nan_count,inf_count,mean,std,min,max,mean_abs,l2_norm,linf_norm,"
          "zero_fraction,skewness,excess_kurtosis,spectral_status,alpha,stable_rank,effective_rank\n");
  }
  SECTION("a row writes its fields by type: quoted text, a shape, empty spectral cells when skipped") {
    TensorDescription t;
    t.name = "a,b";
    t.parsed.layer = 3;
    t.parsed.kind = "attn_q";
    t.dtype = "F32";
    t.shape = {2, 4};
    t.stats.numel = 8;
    t.stats.mean = 0.5;
    t.stats.skewness = std::nan("");
    t.spectral.alpha = 2.0;  // not written: spectral_status is off
    const std::string csv = description_csv({t});
    CHECK(csv.substr(csv.find('\n') + 1) == "\"a,b\",3,attn_q,\"[2,4]\",F32,8,0,0,0.5,0,0,0,0,0,0,0,,0,off,,,\n");
  }
}
