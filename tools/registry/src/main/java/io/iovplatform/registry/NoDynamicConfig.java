package io.iovplatform.registry;

import java.util.List;

import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * Stands in for the bean that Apicurio's config-index Quarkus extension generates at build time
 * (its -deployment artifact is not on Maven Central): no property is dynamically
 * configurable, every setting keeps its static value. Nothing else of the registry changes.
 */
@ApplicationScoped
public class NoDynamicConfig {
    @Produces
    @ApplicationScoped
    DynamicConfigPropertyList properties() {
        return new DynamicConfigPropertyList(List.of());
    }
}
