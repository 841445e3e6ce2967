package alerting

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/prometheus/alertmanager/config"
)

// CheckNoFiles reports the first setting of an Alertmanager configuration
// that names a file on the server (password_file, bearer_token_file,
// credentials_file, TLS ca_file, cert_file and key_file, …): in a
// multi-tenant server a workspace's configuration must not read the
// server's files, so, as Cortex and Mimir do, such settings are refused.
// The secret values themselves (password, api_key, …) are allowed.
func CheckNoFiles(conf *config.Config) error {
	return checkNoFiles(reflect.ValueOf(conf), "")
}

func checkNoFiles(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkNoFiles(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := checkNoFiles(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if err := checkNoFiles(iter.Value(), fmt.Sprintf("%s[%v]", path, iter.Key())); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := v.Field(i)
			if strings.HasSuffix(name, "_file") && fv.Kind() == reflect.String && fv.String() != "" {
				return fmt.Errorf("%s: files on the server cannot be used; give the value itself", strings.TrimPrefix(path+"."+name, "."))
			}
			if strings.HasSuffix(name, "_files") && fv.Kind() == reflect.Slice && fv.Len() > 0 {
				return fmt.Errorf("%s: files on the server cannot be used; give the value itself", strings.TrimPrefix(path+"."+name, "."))
			}
			child := path
			if name != "" && name != "-" {
				child = strings.TrimPrefix(path+"."+name, ".")
			}
			if err := checkNoFiles(fv, child); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckSNSCredentials reports the first SNS receiver of an Alertmanager
// configuration that would publish with the server's own AWS credentials:
// its sigv4 has neither an access_key with its secret_key nor a role_arn.
// The AWS SDK then takes the server's environment, shared configuration
// files (a sigv4 profile names one of them) or instance role, so a tenant
// would act with the operator's identity. A role is assumed with the
// server's credentials; whether the server may assume it is up to the
// role's trust policy.
func CheckSNSCredentials(conf *config.Config) error {
	for i, r := range conf.Receivers {
		for j, sns := range r.SNSConfigs {
			s := sns.Sigv4
			if (s.AccessKey != "" && s.SecretKey != "") || s.RoleARN != "" {
				continue
			}
			return fmt.Errorf("receivers[%d] (%s).sns_configs[%d].sigv4: neither access_key and secret_key nor role_arn is given, so it would publish with the server's own AWS credentials; give the receiver its own keys or a role to assume", i, r.Name, j)
		}
	}
	return nil
}
